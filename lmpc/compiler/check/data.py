"""Datasets (files, mapping, inputs, splits) and metrics (built-ins, judges, sums)."""

from __future__ import annotations

import hashlib
import os
import re

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.scope import duplicates
from lmpc.datafile import DataFileError, Record, parse_records
from lmpc.diagnostics import suggest
from lmpc.files import DATA_LIMIT, FileProblem, decode, read_bytes
from lmpc.grammar import ast
from lmpc.ir import DatasetIR, MetricIR, Span, SplitIR

FORMATS = ("jsonl", "csv", "json")
SPLIT_PARTS = ("train", "val", "test")
# Data that comes split (HotPotQA, GSM8K): one file per part; `dev` is DSPy's word for val.
FILE_PARTS = {"train": "train", "val": "val", "dev": "val", "test": "test"}
DATASET_OPTIONS = ("inputs", "map", "split", *FILE_PARTS)

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
    ds = DatasetIR(name=decl.name, format=fmt, span=decl.span)
    duplicates(decl.options, scope, f"option of dataset {decl.name}")
    files: dict[str, ast.Option] = {}
    for opt in decl.options:
        if opt.key == "inputs":
            ds.inputs = _names(opt.value, ctx, "inputs")
        elif opt.key == "map":
            ds.mapping = _mapping(opt.value, ctx)
        elif opt.key == "split":
            ds.split = _split(opt.value, ctx)
        elif opt.key in FILE_PARTS:
            _file_part(opt, files, ctx)
        else:
            scope.error("E1209", f"unknown option '{opt.key}' of dataset '{decl.name}'",
                        scope.name_span(opt.span, opt.key),
                        suggest(opt.key, DATASET_OPTIONS) or "options: " +
                        ", ".join(DATASET_OPTIONS))
    if files:
        _check_split_files(decl, ds, files, ctx)
        return ds
    if decl.path is None:
        scope.error("E1403", f"dataset '{decl.name}' names no file: write dataset "
                    f"{decl.name} = {fmt} \"rows.{fmt}\", or give one file per split: "
                    f"{{ train: \"train.{fmt}\"  val: \"dev.{fmt}\"  test: \"test.{fmt}\" }}",
                    scope.name_span(decl.span, decl.name))
        return ds
    on_disk, ds.path = ctx.data_path(decl.span.file, decl.path)
    read = _read_file(decl, on_disk, scope.name_span(decl.span, f'"{decl.path}"'), ds, ctx)
    if read is not None:
        ds.sha256, columns, records = read
        ctx.columns[decl.name] = columns
        _check_columns(decl, ds, columns, ctx, records=records)
        _check_split_size(decl, ds.split, len(records), decl.path, ctx)
    return ds


def _file_part(opt: ast.Option, files: dict[str, ast.Option], ctx: Ctx) -> None:
    """``train: "train.jsonl"``: one split's file (``dev`` is another name for ``val``)."""
    part = FILE_PARTS[opt.key]
    value = opt.value
    if not (isinstance(value, ast.Literal) and isinstance(value.value, str)):
        ctx.scope.error("E1403", f"{opt.key} expects the path of its file, as in "
                        f"{opt.key}: \"data/{opt.key}.jsonl\"", value.span)
    elif part in files:
        ctx.scope.error("E1403", f"two files for the {part} split ('dev' is another name "
                        "for 'val')", ctx.scope.name_span(opt.span, opt.key))
    else:
        files[part] = opt


def _check_split_files(decl: ast.DatasetDecl, ds: DatasetIR, files: dict[str, ast.Option],
                       ctx: Ctx) -> None:
    """Data already split into files: each file is its split, nothing is shuffled across
    them. ``split`` may only cut a val part out of the train file."""
    scope = ctx.scope
    if decl.path is not None:
        scope.error("E1403", f"dataset '{decl.name}' gives both a file to split and split "
                    "files; give one or the other",
                    scope.name_span(decl.span, f'"{decl.path}"'))
        return
    split_opt = decl.option("split")
    if split_opt is not None:
        _check_split_of_train_file(ds.split, files, split_opt, ctx)
    all_columns: list[list[str]] = []
    for part in SPLIT_PARTS:
        opt = files.get(part)
        if opt is None:
            continue
        path = str(opt.value.value)  # type: ignore[attr-defined]
        on_disk, ds.files[part] = ctx.data_path(decl.span.file, path)  # type: ignore[index]
        read = _read_file(decl, on_disk, opt.value.span, ds, ctx)
        if read is None:
            continue
        ds.files_sha256[part], columns, records = read  # type: ignore[index]
        all_columns.append(columns)
        _check_columns(decl, ds, columns, ctx, f" (its {part} file)", records)
        if part == "train":
            _check_split_size(decl, ds.split, len(records), path, ctx)
    if all_columns:
        ctx.columns[decl.name] = [c for c in all_columns[0]
                                  if all(c in other for other in all_columns[1:])]


def _check_split_of_train_file(split: SplitIR, files: dict[str, ast.Option],
                               split_opt: ast.Option, ctx: Ctx) -> None:
    scope = ctx.scope
    if "val" in files:
        scope.error("E1403", "split files are used as they are: with a val file there is "
                    "nothing to split (leave out 'split')", split_opt.span)
    elif "train" not in files:
        scope.error("E1403", "split cuts a val part out of the train file, and there is "
                    "no train file", split_opt.span)
    elif split.test is not None:
        scope.error("E1403", "with split files the test rows come from the test file; "
                    "split may only name train and val (cut from the train file)",
                    split_opt.span)


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


def _read_file(decl: ast.DatasetDecl, on_disk: str, path_span: Span, ds: DatasetIR,
               ctx: Ctx) -> tuple[str, list[str], list[Record]] | None:
    """The file's sha256, its columns (first record) and its records; None (after
    reporting why) when it cannot be read. Every record is read, as the build reads
    them, so a file that checks clean also loads; they are kept for the label checks."""
    scope = ctx.scope
    if not os.path.lexists(on_disk):
        scope.error("E1401", f"dataset file '{on_disk}' not found", path_span,
                    "the path is relative to the file that declares the dataset")
        return None
    try:
        data = read_bytes(on_disk, DATA_LIMIT)
        records = parse_records(decode(data), ds.format, on_disk)
    except (FileProblem, DataFileError) as exc:
        where = Span(file=on_disk, line=exc.line, col=exc.col or 1) if exc.line else path_span
        message = str(exc).removeprefix(f"{on_disk}:{exc.line}: ")
        scope.error("E1404", f"cannot read dataset '{decl.name}' as {ds.format}: {message}",
                    where)
        return None
    ctx.records.setdefault(decl.name, []).extend(records)
    columns = list(records[0].values) if records else []
    return hashlib.sha256(data).hexdigest(), columns, records


def _check_columns(decl: ast.DatasetDecl, ds: DatasetIR, columns: list[str], ctx: Ctx,
                   which: str = "", records: list[Record] | None = None) -> None:
    """Every mapped column and every input field must exist in the file: in its first
    record (reported at the declaration) and in every other one (reported at the row)."""
    scope = ctx.scope
    _check_every_row(decl, ds, columns, records or [], ctx)
    for name in ds.inputs:
        column = ds.mapping.get(name, name)
        if column not in columns:
            opt = decl.option("inputs")
            where = scope.name_span(opt.span, name) if opt else decl.span
            scope.error("E1404", f"dataset '{decl.name}'{which} has no column '{column}' for "
                        f"input '{name}'", where, suggest(column, columns) or
                        "columns: " + ", ".join(columns))
    for field, column in ds.mapping.items():
        if column not in columns:
            opt = decl.option("map")
            where = scope.name_span(opt.span, column) if opt else decl.span
            scope.error("E1404", f"dataset '{decl.name}'{which} has no column '{column}' "
                        f"(mapped to '{field}')", where, suggest(column, columns) or
                        "columns: " + ", ".join(columns))


MAX_ROW_ERRORS = 5  # per dataset; the rest are counted


def _check_every_row(decl: ast.DatasetDecl, ds: DatasetIR, columns: list[str],
                     rows: list[Record], ctx: Ctx) -> None:
    needed = {ds.mapping.get(name, name): f"input '{name}'" for name in ds.inputs}
    needed.update({column: f"mapped to '{field}'" for field, column in ds.mapping.items()})
    needed = {c: why for c, why in needed.items() if c in columns}  # first row: done above
    bad = [(r, c, why) for r in rows[1:] for c, why in needed.items() if c not in r.values]
    for record, column, why in bad[:MAX_ROW_ERRORS]:
        path = record.where.rsplit(":", 1)[0]
        ctx.scope.error("E1404", f"dataset '{decl.name}': this row has no column '{column}' "
                        f"({why})", Span(file=path, line=record.line, col=1))
    if len(bad) > MAX_ROW_ERRORS:
        ctx.scope.error("E1404", f"dataset '{decl.name}': {len(bad) - MAX_ROW_ERRORS} more "
                        "rows lack a column", decl.span)


def _check_split_size(decl: ast.DatasetDecl, split: SplitIR, rows: int, path: str,
                      ctx: Ctx) -> None:
    counts = [v for v in (split.train, split.val, split.test) if isinstance(v, int)]
    if sum(counts) > rows:
        opt = decl.option("split")
        ctx.scope.error("E1403", f"split asks for {sum(counts)} rows but '{path}' has "
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
