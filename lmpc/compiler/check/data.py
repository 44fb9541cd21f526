"""Datasets (files, mapping, inputs, splits) and metrics (built-ins, judges, sums)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.scope import duplicates
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import DatasetIR, MetricIR, SplitIR

FORMATS = ("jsonl", "csv", "json")
DATASET_OPTIONS = ("inputs", "map", "split")
SPLIT_PARTS = ("train", "val", "test")

# Built-in metrics and the options each accepts (name -> python type).
_FIELD_METRIC = {"threshold": float}
METRICS: dict[str, dict[str, type]] = {
    "exact_match": {**_FIELD_METRIC, "normalize": bool},
    "f1": dict(_FIELD_METRIC),
    "contains": {**_FIELD_METRIC, "normalize": bool, "value": str},
    "numeric": {**_FIELD_METRIC, "tolerance": float, "relative": bool},
    "regex": {**_FIELD_METRIC, "pattern": str, "ignore_case": bool, "full": bool},
    "judge": {**_FIELD_METRIC, "lm": str},
}


# ---------------------------------------------------------------- datasets


def check_dataset(decl: ast.DatasetDecl, ctx: Ctx) -> DatasetIR:
    scope = ctx.scope
    fmt = decl.format
    if fmt not in FORMATS:
        scope.error("E1403", f"unknown dataset format '{fmt}'", scope.name_span(decl.span, fmt),
                    suggest(fmt, FORMATS) or "formats: " + ", ".join(FORMATS))
        fmt = "jsonl"
    on_disk, stored = ctx.data_path(decl.span.file, decl.path)
    ds = DatasetIR(name=decl.name, format=fmt, path=stored, span=decl.span)
    duplicates(decl.options, scope, f"option of dataset {decl.name}")
    for opt in decl.options:
        if opt.key == "inputs":
            ds.inputs = _names(opt.value, ctx, "inputs")
        elif opt.key == "map":
            ds.mapping = _mapping(opt.value, ctx)
        elif opt.key == "split":
            ds.split = _split(opt.value, ctx)
        else:
            scope.error("E1209", f"unknown option '{opt.key}' of dataset '{decl.name}'",
                        scope.name_span(opt.span, opt.key),
                        suggest(opt.key, DATASET_OPTIONS) or "options: " +
                        ", ".join(DATASET_OPTIONS))
    rows = _read_file(decl, on_disk, ds, ctx)
    if rows is not None:
        _check_split_size(decl, ds.split, rows, ctx)
    return ds


def _names(expr: ast.Node, ctx: Ctx, what: str) -> list[str]:
    items = expr.items if isinstance(expr, ast.ListExpr) else [expr]
    out = []
    for item in items:
        if isinstance(item, ast.Ref) and len(item.path) == 1:
            out.append(item.path[0])
        elif isinstance(item, ast.Literal) and isinstance(item.value, str):
            out.append(item.value)
        else:
            ctx.scope.error("E1403", f"{what} must be a list of field names, as in "
                            "[question, context]", item.span)
    return out


def _mapping(expr: ast.Node, ctx: Ctx) -> dict[str, str]:
    if not isinstance(expr, ast.DictExpr):
        ctx.scope.error("E1403", "map must be { field: \"column\", ... }", expr.span)
        return {}
    out = {}
    for item in expr.items:
        value = item.value
        if isinstance(value, ast.Literal) and isinstance(value.value, str):
            out[item.key] = value.value
        elif isinstance(value, ast.Ref) and len(value.path) == 1:
            out[item.key] = value.path[0]
        else:
            ctx.scope.error("E1403", f"map: column of '{item.key}' must be a string",
                            value.span)
    return out


def _split(expr: ast.Node, ctx: Ctx) -> SplitIR:
    """``train 0.2, val 0.8, seed 7``: ratios (floats in (0, 1]) or counts (ints >= 1)."""
    scope, split = ctx.scope, SplitIR()
    if not isinstance(expr, ast.Pairs):
        scope.error("E1403", "split must look like: train 0.2, val 0.8, seed 7", expr.span)
        return split
    duplicates(expr.items, scope, "split part")
    for pair in expr.items:
        value = pair.value.value
        if pair.name == "seed":
            if isinstance(value, int):
                split.seed = value
            else:
                scope.error("E1403", "split seed must be an int", pair.value.span)
        elif pair.name not in SPLIT_PARTS:
            scope.error("E1209", f"unknown split part '{pair.name}'",
                        scope.name_span(pair.span, pair.name),
                        suggest(pair.name, (*SPLIT_PARTS, "seed")) or
                        "parts: train, val, test, seed")
        elif isinstance(value, int) and value >= 1 or isinstance(value, float) and 0 < value <= 1:
            setattr(split, pair.name, value)
        else:
            scope.error("E1403", f"split {pair.name} must be a ratio in (0, 1] or a count "
                        f">= 1, got {pair.value.raw or value}", pair.value.span)
    ratios = [v for v in (split.train, split.val, split.test) if isinstance(v, float)]
    if sum(ratios) > 1 + 1e-9:
        scope.error("E1403", f"split ratios add up to {sum(ratios):g}, more than 1",
                    expr.span)
    return split


def _read_file(decl: ast.DatasetDecl, on_disk: str, ds: DatasetIR, ctx: Ctx) -> int | None:
    """Hash the file and read its columns (first record); return its row count."""
    scope = ctx.scope
    path_span = scope.name_span(decl.span, f'"{decl.path}"')
    try:
        with open(on_disk, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        scope.error("E1401", f"dataset file '{on_disk}' not found", path_span,
                    "the path is relative to the file that declares the dataset")
        return None
    except OSError as exc:
        scope.error("E1404", f"cannot read dataset file '{on_disk}': {exc.strerror}", path_span)
        return None
    ds.sha256 = hashlib.sha256(data).hexdigest()
    try:
        columns, rows = _columns(data.decode("utf-8"), ds.format)
    except (ValueError, UnicodeDecodeError) as exc:
        scope.error("E1404", f"cannot read dataset '{decl.name}' as {ds.format}: {exc}",
                    path_span)
        return None
    ctx.columns[decl.name] = columns
    _check_columns(decl, ds, columns, ctx)
    return rows


def _columns(text: str, fmt: str) -> tuple[list[str], int]:
    """The first record's keys and the number of records."""
    if fmt == "json":
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("expected a JSON list of objects")
        return (list(rows[0]) if rows else []), len(rows)
    if fmt == "csv":
        records = list(csv.reader(io.StringIO(text)))
        return (records[0] if records else []), max(len(records) - 1, 0)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return [], 0
    try:
        first = json.loads(lines[0][1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {lines[0][0]}: {exc.msg}") from None
    if not isinstance(first, dict):
        raise ValueError(f"line {lines[0][0]}: expected a JSON object")
    return list(first), len(lines)


def _check_columns(decl: ast.DatasetDecl, ds: DatasetIR, columns: list[str], ctx: Ctx) -> None:
    """Every mapped column and every input field must exist in the file."""
    scope = ctx.scope
    for name in ds.inputs:
        column = ds.mapping.get(name, name)
        if column not in columns:
            opt = decl.option("inputs")
            where = scope.name_span(opt.span, name) if opt else decl.span
            scope.error("E1404", f"dataset '{decl.name}' has no column '{column}' for "
                        f"input '{name}'", where, suggest(column, columns) or
                        "columns: " + ", ".join(columns))
    for field, column in ds.mapping.items():
        if column not in columns:
            opt = decl.option("map")
            where = scope.name_span(opt.span, column) if opt else decl.span
            scope.error("E1404", f"dataset '{decl.name}' has no column '{column}' (mapped to "
                        f"'{field}')", where, suggest(column, columns) or
                        "columns: " + ", ".join(columns))


def _check_split_size(decl: ast.DatasetDecl, split: SplitIR, rows: int, ctx: Ctx) -> None:
    counts = [v for v in (split.train, split.val, split.test) if isinstance(v, int)]
    if sum(counts) > rows:
        opt = decl.option("split")
        ctx.scope.error("E1403", f"split asks for {sum(counts)} rows but '{decl.path}' has "
                        f"{rows}", opt.span if opt else decl.span)


def dataset_fields(ds: DatasetIR, columns: list[str] | None) -> set[str] | None:
    """Field names a dataset provides (after mapping), or None if unknown."""
    if columns is None:
        return None
    reverse = {column: field for field, column in ds.mapping.items()}
    return {reverse.get(c, c) for c in columns} | set(ds.mapping)


# ---------------------------------------------------------------- metrics


def check_metric(decl: ast.MetricDecl, ctx: Ctx) -> MetricIR:
    value = decl.value
    if isinstance(value, ast.PythonRef):
        if not re.fullmatch(r"[\w.]+:[\w.]+", value.import_path):
            ctx.scope.error("E1502", "a python metric is \"package.module:function\", got "
                            f"{value.import_path!r}", value.span)
        return MetricIR(name=decl.name, kind="python", import_path=value.import_path,
                        span=decl.span)
    if isinstance(value, ast.MetricSum):
        return _weighted(decl, value, ctx)
    return _builtin(decl, value, ctx)


def _weighted(decl: ast.MetricDecl, value: ast.MetricSum, ctx: Ctx) -> MetricIR:
    parts = []
    for term in value.terms:
        weight = term.weight.value
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            ctx.scope.error("E1502", "a weight must be a number >= 0", term.weight.span)
        if term.metric == decl.name:
            ctx.scope.error("E1502", f"metric '{decl.name}' refers to itself", term.span)
        elif ctx.scope.lookup("metric", term.metric, term.span):
            parts.append((float(weight), term.metric))
    return MetricIR(name=decl.name, kind="weighted", parts=parts, span=decl.span)


def _builtin(decl: ast.MetricDecl, call: ast.MetricCall, ctx: Ctx) -> MetricIR:
    scope = ctx.scope
    if call.name not in METRICS:
        scope.error("E1206", f"unknown metric '{call.name}'", scope.name_span(call.span,
                    call.name), suggest(call.name, [*METRICS, *scope.decls["metric"]]) or
                    "built-in metrics: " + ", ".join(METRICS))
        return MetricIR(name=decl.name, kind="exact_match", span=decl.span)
    metric = MetricIR(name=decl.name, kind=call.name, span=decl.span)
    positional = [a for a in call.args if a.name is None]
    _first_arg(call, positional, metric, ctx)
    for extra in positional[1:]:
        scope.error("E1502", f"{call.name} takes one positional argument", extra.span)
    allowed = METRICS[call.name]
    for arg in (a for a in call.args if a.name is not None):
        _metric_option(call, arg, allowed, metric, ctx)
    if call.name == "regex" and "pattern" not in metric.options:
        scope.error("E1502", "regex needs pattern = \"...\"", call.span)
    return metric


def _first_arg(call: ast.MetricCall, positional: list[ast.Arg], metric: MetricIR,
               ctx: Ctx) -> None:
    """The field compared (or, for judge, the judge's signature)."""
    what = "signature" if call.name == "judge" else "output field"
    first = positional[0].value if positional else None
    if not isinstance(first, ast.Ref) or len(first.path) != 1:
        ctx.scope.error("E1502", f"{call.name} needs the {what} as its first argument, as in "
                        f"{call.name}({'Judge' if call.name == 'judge' else 'answer'})",
                        first.span if first is not None else call.span)
        return
    name = first.path[0]
    if call.name == "judge":
        if ctx.scope.lookup("signature", name, first.span):
            metric.signature = name
    else:
        metric.field = name


def _metric_option(call: ast.MetricCall, arg: ast.Arg, allowed: dict[str, type],
                   metric: MetricIR, ctx: Ctx) -> None:
    scope, name = ctx.scope, arg.name or ""
    if name not in allowed:
        scope.error("E1209", f"unknown option '{name}' of {call.name}",
                    scope.name_span(arg.span, name), suggest(name, allowed) or
                    ("options: " + ", ".join(allowed)))
        return
    node = arg.value
    if name == "lm":
        if isinstance(node, ast.Ref) and scope.lookup("lm", node.name, node.span):
            metric.lm = node.name
        elif not isinstance(node, ast.Ref):
            scope.error("E1502", "lm expects an LM name", node.span)
        return
    value = node.value if isinstance(node, ast.Literal) else None
    want = allowed[name]
    ok = isinstance(value, want) or want is float and isinstance(value, int)
    if isinstance(value, bool) and want is not bool or not ok:
        scope.error("E1502", f"{call.name} option '{name}' expects "
                    f"{ {bool: 'true or false', float: 'a number', str: 'a string'}[want]}",
                    node.span)
        return
    if name == "pattern":
        try:
            re.compile(value)
        except re.error as exc:
            scope.error("E1502", f"invalid regular expression: {exc}", node.span)
            return
    metric.options[name] = float(value) if want is float else value


def metric_fields(name: str, metrics: dict[str, MetricIR], seen: set[str] | None = None
                  ) -> list[tuple[str, MetricIR]]:
    """Output fields a metric reads, with the (sub)metric reading each (through sums)."""
    seen = seen if seen is not None else set()
    metric = metrics.get(name)
    if metric is None or name in seen:
        return []
    seen.add(name)
    if metric.kind == "weighted":
        return [f for _, part in metric.parts for f in metric_fields(part, metrics, seen)]
    return [(metric.field, metric)] if metric.field else []


def metric_cycle(name: str, metrics: dict[str, MetricIR], path: tuple[str, ...] = ()
                 ) -> tuple[str, ...] | None:
    """A cycle of weighted metrics starting at ``name``, if any."""
    if name in path:
        return path[path.index(name):] + (name,)
    metric = metrics.get(name)
    if metric is None or metric.kind != "weighted":
        return None
    for _, part in metric.parts:
        found = metric_cycle(part, metrics, path + (name,))
        if found:
            return found
    return None
