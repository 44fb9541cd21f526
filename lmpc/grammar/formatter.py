"""Canonical formatting of ``.lmp`` source (``lmpc fmt``).

The AST is printed as a list of lines, each remembering the source lines it came from;
comments are then put back by position: a comment alone on its line goes before the
next printed line (indented like it), a comment after code stays at the end of that
code's line. A blank line in the source between two items is kept (at most one).
Formatting is idempotent and the output parses to an equal AST:

>>> print(format_source('lm  fast="m"{temperature:0.0}  // fast one\\nenum P{low,high}', "a"))
lm fast = "m" { temperature: 0.0 }  // fast one
enum P { low, high }
<BLANKLINE>
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from lmpc.diagnostics import Diagnostic
from lmpc.grammar import ast
from lmpc.grammar.parser import parse
from lmpc.ir import Span

INDENT = "  "
MAX_WIDTH = 100


class FormatError(ValueError):
    """The source does not parse; ``diagnostics`` say why."""

    def __init__(self, diagnostics: list) -> None:
        super().__init__(f"{len(diagnostics)} syntax error(s)")
        self.diagnostics = diagnostics


@dataclass
class Item:
    """One printed line (or a comment), with the source lines it stands for."""

    text: str
    depth: int
    first: int
    last: int
    opener: bool = False
    closing: bool = False
    trailing: list[str] = field(default_factory=list)


def format_source(text: str, path: str) -> str:
    """The canonical form of ``text``; raises :class:`FormatError` if it does not parse."""
    tree, diags = parse(text, path)
    if tree is None:
        raise FormatError(diags)
    try:
        return format_file(tree, text)
    except RecursionError:  # expressions nested thousands deep: refuse, don't crash
        span = Span(file=path, line=1, col=1, end_line=1, end_col=2)
        raise FormatError([Diagnostic("E0005", "nested too deeply to format", span)]) from None


def format_file(tree: ast.File, text: str) -> str:
    """Print a parsed file; ``text`` is its source (for comments and blank lines)."""
    items = list(_Printer().file(tree))
    return _render(_place_comments(items, tree.comments, text), text.split("\n"))


# ------------------------------------------------------------------ values, types


def quote(value: str) -> str:
    """A string literal whose value is ``value``."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def atom(value: str | int | float | bool, raw: str | None = None) -> str:
    """A literal value as source text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if raw is not None:
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)


_PRECEDENCE = {"or": 1, "and": 2, "not": 3}
_ATOM = 5


def expr(node: ast.Expr, min_prec: int = 0) -> str:
    """An expression or value, parenthesized where precedence needs it."""
    if isinstance(node, ast.BinaryOp):
        prec = _PRECEDENCE.get(node.op, 4)
        if prec == 4:  # comparisons take plain operands on both sides
            text = f"{expr(node.left, _ATOM)} {node.op} {expr(node.right, _ATOM)}"
        else:
            text = f"{expr(node.left, prec)} {node.op} {expr(node.right, prec + 1)}"
        return f"({text})" if prec < min_prec else text
    if isinstance(node, ast.UnaryOp):
        text = f"not {expr(node.operand, 3)}"
        return f"({text})" if 3 < min_prec else text
    return value(node)


def value(node: ast.Expr) -> str:
    """A value (no operators)."""
    if isinstance(node, ast.Literal):
        return atom(node.value, node.raw)
    if isinstance(node, ast.Ref):
        return node.name
    if isinstance(node, ast.EnvRef):
        return f"env.{node.name}"
    if isinstance(node, ast.ListExpr):
        return "[" + ", ".join(expr(i) for i in node.items) + "]"
    if isinstance(node, ast.DictExpr):
        if not node.items:
            return "{}"
        return "{ " + ", ".join(f"{_key(i.key)}: {expr(i.value)}" for i in node.items) + " }"
    if isinstance(node, ast.Pairs):
        return ", ".join(f"{p.name} {value(p.value)}" for p in node.items)
    if isinstance(node, ast.FuncCall):
        return f"{node.name}(" + ", ".join(expr(a) for a in node.args) + ")"
    return expr(node)


def _key(key: str) -> str:
    return key if key.isidentifier() and key.isascii() else quote(key)


def type_expr(node: ast.TypeExpr | None) -> str:
    """A type expression, spelled as it was written (``Optional[str]``, ``'a'``, parens)."""
    if node is None:
        return "str"
    text = _type_text(node)
    return f"({text})" if node.grouped else text


def _type_text(node: ast.TypeExpr) -> str:
    if isinstance(node, ast.NamedType):
        if not node.args:
            return node.name
        return f"{node.name}[" + ", ".join(type_expr(a) for a in node.args) + "]"
    if isinstance(node, ast.OptionalType):
        inner = type_expr(node.inner)
        if not node.inner.grouped and _is_union(node.inner):
            inner = f"({inner})"  # `?` binds tighter than `|`
        return inner + "?"
    if isinstance(node, ast.LiteralType):
        raws = node.raws if len(node.raws) == len(node.values) else [None] * len(node.values)
        return " | ".join(raw or atom(v) for v, raw in zip(node.values, raws, strict=True))
    parts = [type_expr(m) if m.grouped or not isinstance(m, ast.UnionType)
             else f"({type_expr(m)})" for m in node.members]
    return " | ".join(parts)


def _is_union(node: ast.TypeExpr) -> bool:
    return isinstance(node, ast.UnionType) or (
        isinstance(node, ast.LiteralType) and len(node.values) > 1)


def args(items: list[ast.Arg]) -> str:
    """``(a = 1, b)``."""
    parts = [f"{a.name} = {expr(a.value)}" if a.name else expr(a.value) for a in items]
    return "(" + ", ".join(parts) + ")"


def params(items: list[ast.Param]) -> str:
    """``(x: str, k: int = 3)``."""
    parts = []
    for p in items:
        text = f"{p.name}: {type_expr(p.type)}"
        parts.append(text + (f" = {expr(p.default)}" if p.default is not None else ""))
    return "(" + ", ".join(parts) + ")"


def _desc(desc: str | None) -> str:
    return f" {quote(desc)}" if desc is not None else ""


# ------------------------------------------------------------------ declarations


class _Printer:
    """Turns declarations into :class:`Item` lines."""

    def file(self, tree: ast.File) -> Iterator[Item]:
        for decl in tree.decls:
            method = getattr(self, "decl_" + type(decl).__name__)
            yield from method(decl)

    # helpers
    @staticmethod
    def line(text: str, node: ast.Node, depth: int = 0, **kw: bool) -> Item:
        span = node.span  # type: ignore[attr-defined]
        return Item(text, depth, span.line, span.end_line or span.line, **kw)

    @staticmethod
    def header(text: str, node: ast.Node, depth: int = 0) -> Item:
        span = node.span  # type: ignore[attr-defined]
        return Item(text, depth, span.line, span.line, opener=True)

    @staticmethod
    def close(node: ast.Node, depth: int = 0, text: str = "}") -> Item:
        end = node.span.end_line or node.span.line  # type: ignore[attr-defined]
        return Item(text, depth, end, end, closing=True)

    @staticmethod
    def doc(doc: str | None, node: ast.Node, depth: int) -> Iterator[Item]:
        if doc is None:
            return
        pad = INDENT * depth
        body = "\n".join((pad + ln if ln.strip() else "") if i else ln
                         for i, ln in enumerate(doc.split("\n")))
        line = node.span.line  # type: ignore[attr-defined]
        yield Item(f'"""{body}"""', depth, line, line)

    @staticmethod
    def one_line(node: ast.Node) -> bool:
        span = node.span  # type: ignore[attr-defined]
        return span.end_line in (None, span.line)

    # declarations
    def decl_Import(self, d: ast.Import) -> Iterator[Item]:
        yield self.line(f"import {quote(d.path)}", d)

    def decl_LMDecl(self, d: ast.LMDecl) -> Iterator[Item]:
        head = f"lm {d.name} = {quote(d.model)}"
        if not d.options:
            yield self.line(head, d)
            return
        opts = [f"{o.key}: {expr(o.value)}" for o in d.options]
        single = f"{head} {{ {', '.join(opts)} }}"
        if self.one_line(d) and len(single) <= MAX_WIDTH:
            yield self.line(single, d)
            return
        yield self.header(head + " {", d)
        for o, text in zip(d.options, opts, strict=True):
            yield self.line(text + ",", o, 1)
        yield self.close(d)

    def decl_EnumDecl(self, d: ast.EnumDecl) -> Iterator[Item]:
        members = [m.name + _desc(m.desc) for m in d.members]
        single = f"enum {d.name} {{ {', '.join(members)} }}"
        if d.doc is None and self.one_line(d) and len(single) <= MAX_WIDTH:
            yield self.line(single, d)
            return
        yield self.header(f"enum {d.name} {{", d)
        yield from self.doc(d.doc, d, 1)
        for m, text in zip(d.members, members, strict=True):
            yield self.line(text + ",", m, 1)
        yield self.close(d)

    def decl_ClassDecl(self, d: ast.ClassDecl) -> Iterator[Item]:
        if not d.fields and d.doc is None:
            yield self.line(f"class {d.name} {{}}", d)
            return
        yield self.header(f"class {d.name} {{", d)
        yield from self.doc(d.doc, d, 1)
        for f in d.fields:
            yield self.line(f"{f.name}: {type_expr(f.type)}{_desc(f.desc)}", f, 1)
        yield self.close(d)

    def decl_TypeAlias(self, d: ast.TypeAlias) -> Iterator[Item]:
        yield self.line(f"type {d.name} = {type_expr(d.type)}", d)

    def decl_SignatureDecl(self, d: ast.SignatureDecl) -> Iterator[Item]:
        if d.text is not None:
            doc = f" {quote(d.doc)}" if d.doc is not None else ""
            yield self.line(f"signature {d.name} = {quote(d.text)}{doc}", d)
            return
        if not d.fields and d.doc is None:
            yield self.line(f"signature {d.name} {{}}", d)
            return
        yield self.header(f"signature {d.name} {{", d)
        yield from self.doc(d.doc, d, 1)
        for f in d.fields:
            typed = f": {type_expr(f.type)}" if f.type is not None else ""
            prefix = f" prefix {quote(f.prefix)}" if f.prefix is not None else ""
            yield self.line(f"{f.direction} {f.name}{typed}{_desc(f.desc)}{prefix}", f, 1)
        yield self.close(d)

    def decl_ToolDecl(self, d: ast.ToolDecl) -> Iterator[Item]:
        returns = f" -> {type_expr(d.returns)}" if d.returns is not None else ""
        text = f"tool {d.name}{params(d.params)}{returns} = python {quote(d.import_path)}"
        yield self.line(text + _desc(d.desc), d)

    def decl_ModuleDecl(self, d: ast.ModuleDecl) -> Iterator[Item]:
        yield self.header(f"module {d.name}{params(d.inputs)} -> {params(d.outputs)} {{", d)
        yield from self.doc(d.doc, d, 1)
        for stmt in d.body:
            yield self.line(statement(stmt), stmt, 1)
        yield self.close(d)

    def decl_DatasetDecl(self, d: ast.DatasetDecl) -> Iterator[Item]:
        head = f"dataset {d.name} = {d.format}" + (f" {quote(d.path)}" if d.path else "")
        if not d.options:
            yield self.line(head, d)
            return
        yield self.header(head + " {", d)
        for o in d.options:
            yield self.line(f"{o.key}: {expr(o.value)}", o, 1)
        yield self.close(d)

    def decl_MetricDecl(self, d: ast.MetricDecl) -> Iterator[Item]:
        yield self.line(f"metric {d.name} = {metric_value(d.value)}", d)

    def decl_OptimizeDecl(self, d: ast.OptimizeDecl) -> Iterator[Item]:
        named = f"{d.name} = " if d.name else ""
        yield self.header(f"optimize {named}{d.program} with {d.metric} on {d.dataset} {{", d)
        for o in d.options:
            yield self.line(f"{o.key}: {expr(o.value)}", o, 1)
        for i, p in enumerate(d.passes):
            written = args(p.args) if p.parens or p.args else ""
            yield self.line(("then " if i else "") + p.name + written, p, 1)
        yield self.close(d)

    def decl_TestDecl(self, d: ast.TestDecl) -> Iterator[Item]:
        call = d.call.target + args(d.call.args)
        expects = "expect " + ", ".join(expr(e) for e in d.expects) if d.expects else ""
        single = f"test {quote(d.name)} {{ {call}{' ' + expects if expects else ''} }}"
        if self.one_line(d) and len(single) <= MAX_WIDTH:
            yield self.line(single, d)
            return
        yield self.header(f"test {quote(d.name)} {{", d)
        yield self.line(call, d.call, 1)
        if expects:
            first = d.expects[0].span
            yield Item(expects, 1, first.line, d.expects[-1].span.end_line or first.line)
        yield self.close(d)


def statement(stmt: ast.Stmt) -> str:
    """One module statement."""
    if isinstance(stmt, ast.Step):
        return f"{stmt.name} = {step_value(stmt.value)}"
    if isinstance(stmt, ast.Constraint):
        message = f", {quote(stmt.message)}" if stmt.message is not None else ""
        return f"{stmt.kind} {expr(stmt.expr)}{message}"
    return "return " + args(stmt.values)


def step_value(node: ast.StepValue) -> str:
    """The right-hand side of a step."""
    if isinstance(node, ast.PredictorCall):
        options = args(node.options) if node.options else ""
        return f"{node.kind}{options} {node.signature}{args(node.args)}"
    if isinstance(node, ast.Retrieve):
        return f"retrieve{args(node.options)}{args(node.args)}"
    return node.target + args(node.args)


def metric_value(node: ast.MetricValue) -> str:
    """The right-hand side of a metric."""
    if isinstance(node, ast.MetricCall):
        return node.name + args(node.args)
    if isinstance(node, ast.PythonRef):
        return f"python {quote(node.import_path)}"
    terms = []
    for t in node.terms:
        implicit = t.weight.raw is None  # written without a weight
        terms.append(t.metric if implicit else f"{value(t.weight)} * {t.metric}")
    return " + ".join(terms)


# ------------------------------------------------------------------ comments, layout


def _place_comments(items: list[Item], comments: list[ast.Comment], text: str) -> list[Item]:
    """Merge comments into the item list (see the module docstring)."""
    lines = text.split("\n")
    firsts, running = [], 0
    for item in items:
        running = max(running, item.first)
        firsts.append(running)
    before: dict[int, list[Item]] = {}
    for c in comments:
        prefix = lines[c.span.line - 1][: c.span.col - 1] if c.span.line <= len(lines) else ""
        owner = bisect.bisect_right(firsts, c.span.line) - 1
        if prefix.strip() and owner >= 0:
            items[owner].trailing.append(_comment_text(c))
            continue
        target = bisect.bisect_left(firsts, c.span.line)  # before code starting on its line
        depth = 0
        if target < len(items):
            depth = items[target].depth + (1 if items[target].closing else 0)
        end = c.span.end_line or c.span.line
        before.setdefault(target, []).append(Item(_comment_text(c), depth, c.span.line, end))
    merged: list[Item] = []
    for i, item in enumerate(items):
        merged.extend(before.get(i, []))
        merged.append(item)
    merged.extend(before.get(len(items), []))
    return merged


def _comment_text(comment: ast.Comment) -> str:
    """A comment as written, without trailing spaces or CR line ends."""
    return "\n".join(line.rstrip() for line in comment.text.split("\n"))


def _render(items: list[Item], lines: list[str]) -> str:
    out: list[str] = []
    prev: Item | None = None
    prev_last = 0
    for item in items:
        gap_line = item.first - 1  # the source line just above this item (1-based)
        blank_above = 1 <= gap_line <= len(lines) and not lines[gap_line - 1].strip()
        if (prev is not None and blank_above and gap_line > prev_last and not prev.opener
                and not item.closing):
            out.append("")
        text = INDENT * item.depth + item.text
        if item.trailing:
            text += "  " + " ".join(item.trailing)
        out.append(text)
        prev, prev_last = item, max(prev_last, item.last)
    return "\n".join(out) + "\n" if out else ""
