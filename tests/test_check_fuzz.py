"""No input makes the checker raise: mutations of the examples give diagnostics, never
a traceback (and never an internal-error diagnostic)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmpc.compiler.check.program import check_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.lmp"))}
WORDS = ["ticket", "category", "Category", "predict", "c", "c.category", "local", "none",
         "0", "-1", "1.5", '"x"', "true", "[]", "billing", "accuracy", "tickets", "Router",
         "mipro_v2", "gepa", "react", "str", "int", "list[str]", "env.KEY", "returns"]


def _mutate(text: str, data: st.DataObject) -> str:
    """Replace, delete or duplicate a few words or lines of ``text``."""
    tokens = text.split(" ")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(tokens) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "duplicate", "line"]))
        if action == "replace":
            tokens[i] = data.draw(st.sampled_from(WORDS))
        elif action == "delete":
            tokens[i] = ""
        elif action == "duplicate":
            tokens[i] = tokens[i] + " " + tokens[i]
        else:
            tokens[i] = tokens[i].replace("\n", "\n\n", 1) if "\n" in tokens[i] else tokens[i]
    return " ".join(tokens)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SOURCES)), data=st.data())
def test_mutated_examples_never_crash_the_checker(name: str, data: st.DataObject) -> None:
    text = _mutate(SOURCES[name], data)
    program, diags, sources = check_text(text, str(EXAMPLES / name))
    assert all(d.code != "E1999" for d in diags), [str(d) for d in diags]
    assert (program is None) == any(d.severity == "error" for d in diags)
    for d in diags:
        assert d.span.line >= 1 and d.span.col >= 1 and d.span.file in sources
