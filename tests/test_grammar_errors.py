"""Every syntax error code, with its line and column, message and recovery."""

from __future__ import annotations

import pytest

from lmpc.diagnostics import render
from lmpc.grammar.parser import parse


def errors(src: str) -> list:
    tree, diags = parse(src, "bad.lmp")
    assert tree is None and diags, "expected syntax errors"
    return diags


def where(diags: list) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.col) for d in diags]


@pytest.mark.parametrize("src, code, line, col, words", [
    # E0001 unexpected token, saying what was expected and which block is open
    ("module M(x: str) -> (y: str) {\n  t = predict S(x = x\n}\n", "E0001", 3, 1,
     ["unexpected '}'", "expected one of ')'", "in module 'M' opened at 1:1"]),
    ("lm x = \"m\" { a: 1 b: 2 }", "E0001", 1, 19, ["name 'b'", "','", "in lm 'x'"]),
    ("enum E { }", "E0001", 1, 10, ["unexpected '}'", "a name"]),
    ("signature S {\n  inn x: str\n}", "E0001", 2, 3, ["name 'inn'", "'in'", "'out'"]),
    ("optimize P with m on d {\n  then\n}", "E0001", 3, 1, ["expected a name"]),
    ("metric m = 0.5 * ", "E0001", 1, 17, ["unexpected end of file", "a name", "in metric 'm'"]),
    # E0002 unterminated string, docstring, comment or block
    ('signature S {\n  out y: str "abc\n}\n', "E0002", 2, 14,
     ["unterminated string", "signature 'S' opened at 1:1"]),
    ('class A {\n  """doc\n  x: str\n}\n', "E0002", 2, 3, ["unterminated docstring"]),
    ("enum P { a }\n/* open\nenum Q { b }", "E0002", 2, 1, ["unterminated block comment"]),
    ("module M() -> () {\n  t = predict S(x = 1)\n\n", "E0002", 2, 23,
     ["module 'M' opened at 1:1 is not closed", "expected '}'"]),
    ("test \"t\" { M(a = [1, 2", "E0002", 1, 23, ["test \"t\" opened at 1:1", "not closed"]),
    # E0003 invalid character
    ("enum P { a @ b }", "E0003", 1, 12, ["invalid character '@'", "enum 'P' opened at 1:1"]),
    ("lm x = 'm'", "E0003", 1, 8, ["invalid character \"'\""]),
    # E0004 invalid DSPy string signature
    ('signature S = "a: str"', "E0004", 1, 16, ["exactly one '->'"]),
    ('signature S = "a: str -> "', "E0004", 1, 25, ["at least one output"]),
    ('signature S = "a: str -> b: list[int"', "E0004", 1, 29, ["invalid type"]),
    ('signature S = "a: str, 9x -> b"', "E0004", 1, 24, ["expected a field name"]),
])
def test_error_codes_positions_and_messages(src: str, code: str, line: int, col: int,
                                            words: list[str]) -> None:
    diags = errors(src)
    assert where(diags)[0] == (code, line, col), [str(d) for d in diags]
    for word in words:
        assert word in diags[0].message, diags[0].message


def test_keywords_are_whole_words() -> None:
    diag = errors('lmfast = "m"')[0]
    assert (diag.code, diag.span.line, diag.span.col) == ("E0001", 1, 1)
    assert "name 'lmfast'" in diag.message


def test_misspelled_keyword_gets_a_hint() -> None:
    diag = errors("enum P { a }\nmodul M() -> () {}\n")[0]
    assert (diag.code, diag.span.line, diag.span.col) == ("E0001", 2, 1)
    assert diag.hint == "did you mean 'module'?"


def test_misspelled_predictor_kind_gets_a_hint() -> None:
    diag = errors("module M() -> () {\n  t = chain_of_thougt S(x = 1)\n}")[0]
    assert (diag.span.line, diag.span.col) == (2, 23)
    assert diag.hint == "did you mean 'chain_of_thought'?"


def test_quote_and_hash_get_hints() -> None:
    assert errors("lm x = 'm'")[0].hint == ("strings use double quotes (single quotes only "
                                             "in a type, as in Literal['a', 'b'])")
    assert errors("# comment")[0].hint == "comments start with //"


def test_several_errors_are_reported_in_one_run() -> None:
    src = ("enum P { low,, }\n"
           "lm ok = \"m\"\n"
           "class X { a str }\n"
           "signature S { in x: str }\n"
           "module M(x: str) -> (y: str) {\n  t = predict S(x = x\n}\n"
           "metric m = exact_match(y)\n"
           "dataset d = jsonl \"x\" { split: train 0.5 val 0.5 }\n")
    assert where(errors(src)) == [("E0001", 1, 14), ("E0001", 3, 13), ("E0001", 7, 1),
                                  ("E0001", 9, 46)]


def test_error_rendering_has_source_line_and_caret() -> None:
    src = "enum P { a @ b }"
    text = render(errors(src)[0], src)
    assert text.splitlines() == [
        "bad.lmp:1:12: error[E0003]: invalid character '@' (enum 'P' opened at 1:1)",
        "  |",
        "1 | enum P { a @ b }",
        "  |            ^",
    ]


def test_errors_are_capped() -> None:
    src = "enum E { }\n" * 100
    assert len(errors(src)) == 20


@pytest.mark.parametrize("src", ["", "\n\n", "   ", "// only a comment", "/* c */"])
def test_blank_sources_are_fine(src: str) -> None:
    tree, diags = parse(src, "ok.lmp")
    assert diags == [] and tree is not None and tree.decls == []


@pytest.mark.parametrize("src", ["\x00", "\ufeffenum P { a }", "enum P { a }\x1a", "\"" * 7,
                                 "module", "{{{{", "}}}", "lm x = \"\\", "type T = ((((str"])
def test_odd_inputs_never_raise(src: str) -> None:
    tree, diags = parse(src, "odd.lmp")
    assert tree is not None or all(d.code.startswith("E0") for d in diags)
