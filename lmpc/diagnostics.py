"""Diagnostics: coded errors with a position, rendered like a compiler's.

Codes are stable: E0xxx are syntax errors (the parser), E1xxx semantic errors (the
checker). ``render`` gives the line ``FILE:LINE:COL: error[CODE]: message``, then the
source line and a caret under the span, then ``help:`` when there is a hint:

>>> from lmpc.ir import Span
>>> d = Diagnostic("E1001", "unknown signature 'Triag'", Span(file="a.lmp", line=1, col=18,
...                end_line=1, end_col=23), hint=suggest("Triag", ["Triage", "Summarize"]))
>>> print(render(d, "t = predict      Triag(x = 1)"))
a.lmp:1:18: error[E1001]: unknown signature 'Triag'
  |
1 | t = predict      Triag(x = 1)
  |                  ^~~~~
help: did you mean 'Triage'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from lmpc.ir import Span

# Syntax error codes used by the parser (documented in docs/language.md).
SYNTAX_CODES = {
    "E0001": "unexpected token",
    "E0002": "unterminated string, comment or block",
    "E0003": "invalid character",
    "E0004": "invalid DSPy string signature",
    "E0005": "nested too deeply to format",
    "E0006": "nested too deeply",
    "E0007": "number too large",
    "E0000": "internal parser error (a bug in lmpc)",
}


@dataclass
class Diagnostic:
    """One error or warning at a place in a source file."""

    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.span.file}:{self.span.line}:{self.span.col}"
        return f"{where}: {self.severity}[{self.code}]: {self.message}"


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """A did-you-mean hint for ``name`` among ``candidates``, or None.

    >>> suggest("chain_of_thougt", ["predict", "chain_of_thought"])
    "did you mean 'chain_of_thought'?"
    >>> suggest("xyz", ["predict"]) is None
    True
    """
    pool = sorted({c for c in candidates if c != name})
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    return f"did you mean '{close[0]}'?" if close else None


def _caret(line_text: str, span: Span) -> str:
    """``^~~~`` under the span's part of its first line (at least one caret).

    ``end_col`` is exclusive; no end means one caret; a span over several lines is
    underlined to the end of its first line.
    """
    start = max(span.col - 1, 0)
    if span.end_col is None:
        width = 1
    elif span.end_line in (None, span.line):
        width = max(span.end_col - span.col, 1)
    else:
        width = max(len(line_text.rstrip()) - start, 1)
    # Tabs in the prefix keep their width so the caret lines up in a terminal.
    prefix = "".join("\t" if ch == "\t" else " " for ch in line_text[:start])
    prefix += " " * max(start - len(line_text), 0)
    return prefix + "^" + "~" * (width - 1)


WIDTH = 160  # characters of a source line shown around the caret


def render(diag: Diagnostic, source_text: str | None) -> str:
    """A diagnostic as text: header line, the source line with a caret, the hint.

    A long line is cut to ``WIDTH`` characters around the caret (``…`` marks a cut)."""
    out = [str(diag)]
    line_text = _line(source_text, diag.span.line) if source_text is not None else None
    if line_text is not None:
        line_text, span = _window(line_text.rstrip("\r"), diag.span)
        gutter = " " * len(str(diag.span.line))
        out.append(f"{gutter} |")
        out.append(f"{diag.span.line} | {line_text}")
        out.append(f"{gutter} | {_caret(line_text, span)}")
    if diag.hint:
        hint = diag.hint
        out.append(hint if hint.startswith("help:") else f"help: {hint}")
    return "\n".join(out)


def _line(text: str, number: int) -> str | None:
    """Line ``number`` (1-based, counting "\\n" only), found without splitting the text."""
    if number < 1:
        return None
    start = 0
    for _ in range(number - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _window(line: str, span: Span) -> tuple[str, Span]:
    """The part of a long line around the span, and the span moved to match."""
    if len(line) <= WIDTH:
        return line, span
    begin = max(0, min(span.col - 1 - WIDTH // 3, len(line) - WIDTH))
    shown = line[begin:begin + WIDTH]
    lead = "…" if begin else ""
    tail = "…" if begin + WIDTH < len(line) else ""
    col = span.col - begin + len(lead)
    end_col = None
    if span.end_col is not None and span.end_line in (None, span.line):
        end_col = min(span.end_col - begin + len(lead), len(shown) + len(lead) + 1)
    moved = span.model_copy(update={"col": col, "end_col": end_col, "end_line": span.line})
    return lead + shown + tail, moved


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    """Several diagnostics, each rendered against its own file's text."""
    return "\n".join(render(d, sources.get(d.span.file)) for d in diags)
