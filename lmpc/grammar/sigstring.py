"""DSPy's string signatures: ``"question: str, context: list[str] -> answer: int"``.

A string-form ``signature`` keeps its text verbatim (the formatter prints it back); its
fields are parsed here into ``SigField`` nodes whose spans point inside the string.
A field with no type has ``type=None`` (str). The fields are split as DSPy splits them
(one ``->``, commas outside brackets, a trailing comma allowed) and each type is parsed by
the one type grammar of ``lmp.lark``, so ``Optional[str]``, ``int | None`` or
``Literal['a', 'b']`` mean here what they mean in a block signature.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lark.exceptions import LarkError

from lmpc.diagnostics import Diagnostic
from lmpc.grammar import ast
from lmpc.grammar.driver import MAX_DEPTH, TooDeep
from lmpc.grammar.transformer import SourceLimit
from lmpc.ir import Span

#: Parses one type expression (``lmpc.grammar.parser.parse_type``); raises ``LarkError``.
ParseType = Callable[[str, str], ast.TypeExpr]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SigStringError(ValueError):
    """A bad string signature; ``offset`` is where in the string it went wrong."""

    def __init__(self, message: str, offset: int, width: int = 1) -> None:
        super().__init__(message)
        self.offset, self.width = offset, width


def split_top_level(text: str, sep: str, start: int = 0) -> list[tuple[int, str]]:
    """Split on ``sep`` outside brackets; each part with its offset in ``text``."""
    parts, depth, begin, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append((start + begin, text[begin:i]))
            begin = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append((start + begin, text[begin:]))
    return parts


def parse_fields(text: str, path: str, line: int, col: int,
                 parse_type: ParseType) -> list[ast.SigField]:
    """Fields of a string signature whose text starts at ``line:col`` in the source."""
    sides = split_top_level(text, "->")
    if len(sides) != 2:
        raise SigStringError("a string signature needs exactly one '->' between inputs "
                             "and outputs, as in \"question: str -> answer: str\"", 0,
                             max(len(text), 1))
    fields: list[ast.SigField] = []
    for direction, (offset, side) in zip(("in", "out"), sides, strict=True):
        if not side.strip():
            if direction == "out":
                raise SigStringError("a string signature needs at least one output field",
                                     offset, 1)
            continue
        items = split_top_level(side, ",", offset)
        if len(items) > 1 and not items[-1][1].strip():
            items.pop()  # a trailing comma, as Python (and so DSPy) allows
        for item_offset, item in items:
            fields.append(_field(direction, item, item_offset, path, line, col, parse_type))
    return fields


def _field(direction: str, item: str, offset: int, path: str, line: int,
           col: int, parse_type: ParseType) -> ast.SigField:
    lead = len(item) - len(item.lstrip())
    offset += lead
    item = item.strip()
    name, _, type_text = item.partition(":")
    name = name.strip()
    if not _NAME.match(name):
        raise SigStringError(f"expected a field name, found {item!r}", offset,
                             max(len(item), 1))
    span = Span(file=path, line=line, col=col + offset, end_line=line,
                end_col=col + offset + len(item))
    type_ = None
    if type_text.strip():
        type_offset = offset + item.index(":") + 1
        type_offset += len(type_text) - len(type_text.lstrip())
        try:
            type_ = parse_type(type_text.strip(), path)
        except TooDeep:
            raise SigStringError(f"the type of field {name!r} is nested more than "
                                 f"{MAX_DEPTH} levels deep", type_offset, 1) from None
        except SourceLimit as limit:  # a literal number in the type, too long or large
            raise SigStringError(f"the type of field {name!r} has {limit.message}",
                                 type_offset, 1) from None
        except LarkError:
            shown = type_text.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise SigStringError(f"invalid type {shown!r} for field {name!r}",
                                 type_offset, max(len(type_text.strip()), 1)) from None
        type_ = _respan(type_, span, col + type_offset - 1)
    return ast.SigField(direction=direction, name=name, type=type_, span=span)


def _respan(type_: ast.TypeExpr, field: Span, shift: int) -> ast.TypeExpr:
    """Point the nodes of a type parsed from a string at their place in the source
    (columns shifted by where the type starts); anything off the string's one line
    points at the whole field."""
    for node in type_.walk():
        own = node.span  # type: ignore[attr-defined]
        if own.line == 1 and (own.end_line or 1) == 1:
            node.span = Span(file=field.file, line=field.line,  # type: ignore[attr-defined]
                             col=own.col + shift, end_line=field.line,
                             end_col=(own.end_col or own.col) + shift)
        else:
            node.span = field  # type: ignore[attr-defined]
    return type_


def expand_string_signatures(file: ast.File, path: str,
                             parse_type: ParseType) -> list[Diagnostic]:
    """Fill the fields of every string-form signature; return E0004 diagnostics.

    ``parse_type`` is the parser's own type parser, passed in so that this module needs
    nothing from the parser (which calls it).
    """
    diags = []
    for decl in file.decls:
        if not isinstance(decl, ast.SignatureDecl) or decl.text is None:
            continue
        line, col = _string_start(decl)
        try:
            decl.fields = parse_fields(decl.text, path, line, col, parse_type)
        except SigStringError as err:
            span = Span(file=path, line=line, col=col + err.offset, end_line=line,
                        end_col=col + err.offset + err.width)
            diags.append(Diagnostic("E0004", f"invalid string signature: {err}", span))
    return diags


def _string_start(decl: ast.SignatureDecl) -> tuple[int, int]:
    """Line and column of the first character inside the signature's string."""
    if decl.text_span is not None:
        return decl.text_span.line, decl.text_span.col + 1
    # No token position (a tree built by hand): the string ends the declaration.
    span = decl.span
    end_line = span.end_line or span.line
    end_col = span.end_col or span.col
    escaped = (decl.text or "").replace("\\", "\\\\").replace('"', '\\"')
    return end_line, end_col - 1 - len(escaped.replace("\n", "\\n"))
