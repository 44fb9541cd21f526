"""The fast parser (lmpc.grammar.driver) against Lark's own parser, the reference.

Both must accept the same files and build the same AST, spans and comments included.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from lark.exceptions import LarkError

from lmpc.grammar.driver import fast_parse, tables
from lmpc.grammar.parser import get_lark, lark_parse, parse_type
from lmpc.grammar.transformer import make_span
from lmpc.ir import Span

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from check_bench import generate  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.lmp"))


def shape(x: Any) -> Any:
    """A node as nested tuples, spans and raw spellings included (== leaves them out)."""
    if isinstance(x, Span):
        return ("Span", x.file, x.line, x.col, x.end_line, x.end_col)
    if dataclasses.is_dataclass(x):
        return (type(x).__name__, *((f.name, shape(getattr(x, f.name)))
                                    for f in dataclasses.fields(x)))
    if isinstance(x, list):
        return [shape(i) for i in x]
    return (type(x).__name__, x)


def comments(tokens: list) -> list[tuple]:
    return [(str(t), t.type, t.start_pos, t.line, t.column, t.end_line, t.end_column,
             t.end_pos) for t in tokens]


def same_as_lark(text: str) -> bool:
    """Assert the two parsers agree on ``text``; True if it parsed."""
    fast = fast_parse(tables(get_lark()), text, "f.lmp")
    try:
        tree, lark_comments = lark_parse(text, "f.lmp")
    except LarkError:
        assert fast is None, text
        return False
    assert fast is not None, text
    assert shape(fast[0]) == shape(tree)
    assert comments(fast[1]) == comments(lark_comments)
    return True


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_parse_the_same(path: Path) -> None:
    assert same_as_lark(path.read_text(encoding="utf-8"))


def test_generated_program_parses_the_same() -> None:
    assert same_as_lark(generate(200))


def test_comments_docstrings_and_keywords_as_names() -> None:
    text = ('/* head\n comment */ lm in = "m" // tail\n'
            'signature on { """Doc\n  text."""\n in with: str "d"\n out then: list[int]? }\n'
            'module M(x: str) -> (y: str) {\n  a = predict on(with = x)\n'
            '  assert not (a.then contains 1) or x in ["a", "b"], "m"\n'
            '  return (y = x)\n}\n  \n')
    assert same_as_lark(text)


def test_mutated_files_agree() -> None:
    """Random edits of the examples: both accept, or both reject."""
    rng = random.Random(7)
    seeds = [p.read_text(encoding="utf-8") for p in EXAMPLES] + [generate(60)]
    accepted = 0
    for _ in range(300):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:i] + text[i + 1:]
            else:
                text = text[:i] + rng.choice('{}()[],:=."/*-?|<> \nax0') + text[i:]
        accepted += same_as_lark(text)
    assert 0 < accepted < 300  # both kinds of input were exercised


@pytest.mark.parametrize("text", ["str", "list[dict[str, Level]]?", '"a" | "b" | 3',
                                  "(int)?", "a.b", "list[", "in"])
def test_types_parse_the_same(text: str) -> None:
    fast = fast_parse(tables(get_lark()), text, "t.lmp", start="type")
    try:
        ref = get_lark().parse(text, start="type")
    except LarkError:
        assert fast is None
        with pytest.raises(LarkError):
            parse_type(text, "t.lmp")
        return
    assert fast is not None
    assert shape(parse_type(text, "t.lmp")) == shape(fast[0])
    assert shape(fast[0])[0] == shape(ref)[0]


def test_make_span_is_a_real_span() -> None:
    fast, slow = make_span("a.lmp", 1, 2, 3, 4), Span(file="a.lmp", line=1, col=2,
                                                       end_line=3, end_col=4)
    assert fast == slow and str(fast) == str(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    fast.end_col = 9  # still an ordinary, mutable pydantic model
    assert fast.end_col == 9 and slow.end_col == 4


def test_gc_state_is_restored() -> None:
    """Parsing pauses the cyclic GC and restores it, leaving others' frozen objects be."""
    from lmpc.grammar.parser import parse

    assert gc.isenabled()
    assert parse("enum P { a }", "a.lmp")[0] is not None
    assert gc.isenabled()
    gc.disable()
    try:
        parse("enum P { a }", "a.lmp")
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        parse("enum P { a }", "a.lmp")
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
