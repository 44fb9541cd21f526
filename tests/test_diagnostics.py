"""Diagnostics: the rendered format, carets, hints and did-you-mean."""

from __future__ import annotations

from lmpc.diagnostics import Diagnostic, render, render_all, suggest
from lmpc.ir import Span


def span(line: int, col: int, end_col: int | None = None, end_line: int | None = None) -> Span:
    return Span(file="p.lmp", line=line, col=col, end_line=end_line or line,
                end_col=end_col if end_col is not None else col + 1)


SOURCE = "enum P { a }\n  t = predict Triag(x = 1)\n"


def test_render_header_line_caret_and_help() -> None:
    diag = Diagnostic("E1001", "unknown signature 'Triag'", span(2, 15, 20),
                      hint=suggest("Triag", ["Triage", "Summarize"]))
    assert render(diag, SOURCE).splitlines() == [
        "p.lmp:2:15: error[E1001]: unknown signature 'Triag'",
        "  |",
        "2 |   t = predict Triag(x = 1)",
        "  |               ^~~~~",
        "help: did you mean 'Triage'?",
    ]


def test_multiline_span_underlines_to_end_of_first_line() -> None:
    diag = Diagnostic("E0002", "open", span(1, 6, 2, end_line=2))
    assert render(diag, SOURCE).splitlines()[-1] == "  |      ^~~~~~~"


def test_span_without_end_gets_one_caret() -> None:
    diag = Diagnostic("E1002", "here", Span(file="p.lmp", line=2, col=3))
    assert render(diag, SOURCE).splitlines()[-1] == "  |   ^"


def test_warning_severity_and_missing_source() -> None:
    diag = Diagnostic("E1999", "odd", span(9, 1), severity="warning")
    assert render(diag, SOURCE) == "p.lmp:9:1: warning[E1999]: odd"
    assert render(diag, None) == "p.lmp:9:1: warning[E1999]: odd"


def test_tabs_keep_caret_aligned() -> None:
    diag = Diagnostic("E0003", "bad", span(1, 3))
    assert render(diag, "\t\t@").splitlines()[-1] == "  | \t\t^"


def test_suggest() -> None:
    assert suggest("Prioriti", ["Priority", "Label"]) == "did you mean 'Priority'?"
    assert suggest("priority", ["Priority"]) == "did you mean 'Priority'?"
    assert suggest("zzz", ["Priority"]) is None
    assert suggest("x", []) is None


def test_render_all_uses_each_files_source() -> None:
    a = Diagnostic("E1", "first", Span(file="a.lmp", line=1, col=1, end_line=1, end_col=2))
    b = Diagnostic("E2", "second", Span(file="b.lmp", line=1, col=2, end_line=1, end_col=3))
    text = render_all([a, b], {"a.lmp": "xy", "b.lmp": "zw"})
    assert "1 | xy" in text and "1 | zw" in text and text.index("first") < text.index("second")
