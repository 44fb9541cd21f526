"""The checker's shared state: declarations by namespace, sources, and collected errors.

Every stage of semantic analysis reports through :meth:`Scope.error`, which caps the
number of diagnostics, and finds declarations through :meth:`Scope.lookup`, which
reports an unknown name with a did-you-mean in one call.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from lmpc.diagnostics import Diagnostic, suggest
from lmpc.grammar import ast
from lmpc.ir import Span

MAX_ERRORS = 50

# Namespace of each declaration kind; modules and tools share one because a step
# ``x = Name(...)`` may call either.
NAMESPACES = {
    ast.LMDecl: "lm",
    ast.EnumDecl: "type",
    ast.ClassDecl: "type",
    ast.TypeAlias: "type",
    ast.SignatureDecl: "signature",
    ast.ToolDecl: "callable",
    ast.ModuleDecl: "callable",
    ast.DatasetDecl: "dataset",
    ast.MetricDecl: "metric",
}

# What an unknown name is called in messages, and its code (see check.py).
UNKNOWN = {
    "lm": ("LM", "E1201"),
    "signature": ("signature", "E1202"),
    "callable": ("module or tool", "E1203"),
    "module": ("module", "E1203"),
    "tool": ("tool", "E1204"),
    "type": ("type", "E1205"),
    "metric": ("metric", "E1206"),
    "dataset": ("dataset", "E1207"),
}


class TooManyErrors(Exception):
    """Raised once the cap is reached, to stop analysis early."""


@dataclass
class SourceText:
    """A source file's text with a line index, to locate names inside a node's span."""

    text: str
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", self.text)]

    def offset(self, line: int, col: int) -> int:
        if line - 1 >= len(self.starts):
            return len(self.text)
        return self.starts[max(line - 1, 0)] + max(col - 1, 0)

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def slice(self, span: Span) -> str:
        end = self.offset(span.end_line or span.line, span.end_col or span.col)
        return self.text[self.offset(span.line, span.col):end]


@dataclass
class Scope:
    """Declarations of the whole program (imports merged) and the diagnostics so far."""

    sources: dict[str, SourceText] = field(default_factory=dict)
    decls: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {ns: {} for ns in set(NAMESPACES.values())})
    diagnostics: list[Diagnostic] = field(default_factory=list)

    # ------------------------------------------------------------ reporting
    def error(self, code: str, message: str, span: Span, hint: str | None = None,
              severity: str = "error") -> None:
        """Record one diagnostic; stop the analysis once MAX_ERRORS are collected."""
        if self.error_count() >= MAX_ERRORS:
            raise TooManyErrors
        self.diagnostics.append(Diagnostic(code, message, span, hint, severity))

    def warn(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.error(code, message, span, hint, severity="warning")

    def error_count(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    # ------------------------------------------------------------ names
    def lookup(self, namespace: str, name: str, span: Span, *, kind: str | None = None,
               extra: tuple[str, ...] = ()) -> Any | None:
        """The declaration ``name`` in ``namespace``, or None after reporting it unknown.

        ``kind`` refines the message ("module" or "tool" within "callable");
        ``extra`` adds candidates for the did-you-mean (e.g. built-in type names).
        """
        found = self.decls[namespace].get(name)
        if found is not None and (kind is None or _kind_of(found) == kind):
            return found
        label, code = UNKNOWN[kind or namespace]
        pool = [n for n, d in self.decls[namespace].items() if kind is None or
                _kind_of(d) == kind]
        self.error(code, f"unknown {label} '{name}'", self.name_span(span, name),
                   suggest(name, [*pool, *extra]))
        return None

    def name_span(self, span: Span, name: str, after: Span | None = None) -> Span:
        """The span of the word ``name`` inside ``span`` (after ``after``), else ``span``."""
        source = self.sources.get(span.file)
        if source is None or not name:
            return span
        start = source.offset(span.line, span.col)
        if after is not None and after.file == span.file:
            start = max(start, source.offset(after.end_line or after.line,
                                             after.end_col or after.col))
        end = source.offset(span.end_line or span.line, span.end_col or span.col)
        found = _find_word(source.text, name, start, max(end, start))
        if found < 0:
            return span
        line, col = source.position(found)
        return Span(file=span.file, line=line, col=col, end_line=line, end_col=col + len(name))

    def text_of(self, span: Span) -> str:
        """The source text a span covers (for default constraint messages)."""
        source = self.sources.get(span.file)
        return source.slice(span) if source is not None else ""


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _find_word(text: str, word: str, start: int, end: int) -> int:
    """Offset of ``word`` in ``text[start:end]`` not inside a longer name, else -1."""
    at = text.find(word, start, end)
    while at >= 0:
        before = text[at - 1] if at > 0 else " "
        after = text[at + len(word)] if at + len(word) < len(text) else " "
        edge_ok = not (_is_word_char(word[0]) and _is_word_char(before)) and \
            not (_is_word_char(word[-1]) and _is_word_char(after))
        if edge_ok:
            return at
        at = text.find(word, at + 1, end)
    return -1


def _kind_of(decl: Any) -> str:
    if isinstance(decl, ast.ModuleDecl):
        return "module"
    if isinstance(decl, ast.ToolDecl):
        return "tool"
    return ""


class NotLiteral(ValueError):
    """An expression that is not a plain value; ``node`` is the offending part."""

    def __init__(self, node: ast.Node) -> None:
        super().__init__("not a literal")
        self.node = node


def plain_value(expr: ast.Node, names_as_strings: bool = True) -> Any:
    """The JSON value of a literal expression.

    A bare name stands for itself as a string (``auto = light``, ``reduce = majority``)
    and ``none`` for None; ``env.NAME`` becomes ``{"env": "NAME"}``. Raises
    :class:`NotLiteral` for anything else (a call, an operator, a dotted name when
    ``names_as_strings`` is False).
    """
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Ref) and names_as_strings:
        return None if expr.path == ["none"] else expr.name
    if isinstance(expr, ast.EnvRef):
        return {"env": expr.name}
    if isinstance(expr, ast.ListExpr):
        return [plain_value(i, names_as_strings) for i in expr.items]
    if isinstance(expr, ast.DictExpr):
        return {i.key: plain_value(i.value, names_as_strings) for i in expr.items}
    raise NotLiteral(expr)


def duplicates(items: list[Any], scope: Scope, what: str) -> set[str]:
    """Report repeated ``.name``s among ``items`` (E1102); return the names seen."""
    seen: dict[str, Any] = {}
    for item in items:
        name = getattr(item, "name", None) or getattr(item, "key", None)
        if name is None:
            continue
        if name in seen:
            first = seen[name].span
            scope.error("E1102", f"duplicate {what} '{name}' (first at line {first.line})",
                        scope.name_span(item.span, name))
        else:
            seen[name] = item
    return set(seen)
