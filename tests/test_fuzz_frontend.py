"""Property tests: mutated sources never make the front end raise or the fmt CLI crash.

Mutations delete, insert and duplicate characters and whole tokens of valid files. For
every mutant that still parses, formatting must be idempotent and keep the AST.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmpc.cli.fmt import command
from lmpc.grammar.formatter import format_source
from lmpc.grammar.parser import parse

FIXTURES = Path(__file__).parent / "fixtures" / "grammar"
EXAMPLES = Path(__file__).parent.parent / "examples"
SOURCES = [p.read_text() for p in sorted([*FIXTURES.glob("*.lmp"), *EXAMPLES.glob("*.lmp")])]
TOKENS = ["module", "signature", "lm", "enum", "then", "in", "out", "assert", "return", "{",
          "}", "(", ")", "[", "]", '"', '"""', "/*", "*/", "//", ",", ":", "=", "->", "?",
          "|", ".", "*", "+", "==", "env.X", "1.5", "-3", "true", "\n", " ", "\t", "\\", "@",
          "é", "\x00"]

mutation = st.tuples(
    st.sampled_from(["delete", "insert_char", "insert_token", "duplicate"]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.integers(min_value=1, max_value=12),
    st.one_of(st.characters(), st.sampled_from(TOKENS)),
)


def mutate(src: str, ops: list[tuple[str, float, int, str]]) -> str:
    for op, where, size, piece in ops:
        at = int(where * len(src))
        if op == "delete":
            src = src[:at] + src[at + size:]
        elif op == "duplicate":
            src = src[:at] + src[at:at + size] + src[at:]
        else:
            src = src[:at] + piece + src[at:]
    return src


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), st.lists(mutation, min_size=1, max_size=4))
def test_parse_never_raises_and_fmt_roundtrips(src: str, ops: list) -> None:
    text = mutate(src, ops)
    tree, diags = parse(text, "fuzz.lmp")
    assert (tree is None) == bool(diags)
    assert all(d.code.startswith("E0") and d.code != "E0000" for d in diags), diags
    if tree is not None:
        once = format_source(text, "fuzz.lmp")
        assert format_source(once, "fuzz.lmp") == once
        assert parse(once, "fuzz.lmp")[0] == tree


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), st.lists(mutation, min_size=1, max_size=3))
def test_fmt_cli_never_tracebacks(tmp_path_factory, src: str, ops: list) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.lmp"
    path.write_text(mutate(src, ops), encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(command, ["--check", str(path)])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit)
