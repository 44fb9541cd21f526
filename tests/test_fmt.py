"""``lmpc fmt``: canonical output, comments kept, idempotent, equal AST; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lmpc.cli.fmt import command
from lmpc.grammar.formatter import FormatError, format_source
from lmpc.grammar.parser import parse

FIXTURE = Path(__file__).parent / "fixtures" / "grammar" / "full.lmp"

MESSY = '''// header comment

import   "common.lmp"
lm fast="openai/gpt-4o-mini"{temperature:0.0,max_tokens:256}   // trailing
lm big = "m" {
  // about a
  a: 1,   /* inline */
  b: env.KEY
}


enum Priority{low "can wait",medium,high}
class Address{"""A postal address."""street:str "street and number" zip:str?}
signature Triage {
  """Decide how urgent
     a support ticket is."""
  in ticket:str   "the message"

  out priority :Priority
  // closing comment
}
signature S="a: str -> b"
module M(ticket:str)->(priority:Priority){
  t=chain_of_thought Triage(ticket=ticket)
  assert (len(t.reason)<=200 or not t.ok) and t.x in [1,2],"short"
  return(priority=t.priority)
}
metric combo=0.7*acc+f
test "t" {M(ticket="x") expect priority==high}
/* final
   block */
'''

EXPECTED = '''// header comment

import "common.lmp"
lm fast = "openai/gpt-4o-mini" { temperature: 0.0, max_tokens: 256 }  // trailing
lm big = "m" {
  // about a
  a: 1,  /* inline */
  b: env.KEY,
}

enum Priority { low "can wait", medium, high }
class Address {
  """A postal address."""
  street: str "street and number"
  zip: str?
}
signature Triage {
  """Decide how urgent
  a support ticket is."""
  in ticket: str "the message"

  out priority: Priority
  // closing comment
}
signature S = "a: str -> b"
module M(ticket: str) -> (priority: Priority) {
  t = chain_of_thought Triage(ticket = ticket)
  assert (len(t.reason) <= 200 or not t.ok) and t.x in [1, 2], "short"
  return (priority = t.priority)
}
metric combo = 0.7 * acc + f
test "t" { M(ticket = "x") expect priority == high }
/* final
   block */
'''


def test_canonical_output_keeps_comments_and_single_blank_lines() -> None:
    assert format_source(MESSY, "m.lmp") == EXPECTED


@pytest.mark.parametrize("src", [MESSY, FIXTURE.read_text()], ids=["messy", "full"])
def test_idempotent_and_same_ast(src: str) -> None:
    once = format_source(src, "a.lmp")
    assert format_source(once, "a.lmp") == once
    before, after = parse(src, "a.lmp")[0], parse(once, "a.lmp")[0]
    assert before == after
    assert [c.text for c in before.comments] == [c.text for c in after.comments]


def test_crlf_sources_become_lf() -> None:
    src = MESSY.replace("\n", "\r\n")
    out = format_source(src, "a.lmp")
    assert "\r" not in out and out == EXPECTED
    assert parse(src, "a")[0] == parse(out, "a")[0]


def test_long_one_liners_are_broken_up() -> None:
    options = ", ".join(f"option_{i}: {i}" for i in range(12))
    out = format_source(f'lm x = "m" {{ {options} }}', "a.lmp")
    assert out.splitlines()[0] == 'lm x = "m" {' and out.splitlines()[1] == "  option_0: 0,"


def test_strings_are_re_escaped() -> None:
    src = 'metric r = regex(a, pattern = "^\\\\d+\\"$\\n")\n'
    out = format_source(src, "a.lmp")
    assert out == src
    assert parse(out, "a")[0] == parse(src, "a")[0]


def test_syntax_error_raises_format_error() -> None:
    with pytest.raises(FormatError) as info:
        format_source("enum {", "bad.lmp")
    assert info.value.diagnostics[0].code == "E0001"


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    src = "module M() -> () { assert " + " or ".join(["a"] * 3000) + " }"
    assert [d.code for d in parse(src, "deep.lmp")[1]] == ["E0006"]  # stopped at parse
    with pytest.raises(FormatError) as info:
        format_source(src, "deep.lmp")
    assert info.value.diagnostics[0].code == "E0006"


def test_cli_rewrites_then_check_passes(tmp_path: Path) -> None:
    path = tmp_path / "a.lmp"
    path.write_text(MESSY)
    runner = CliRunner()
    check = runner.invoke(command, ["--check", str(path)])
    assert check.exit_code == 1 and f"would reformat {path}" in check.output
    assert path.read_text() == MESSY  # --check never writes
    assert runner.invoke(command, [str(path)]).exit_code == 0
    assert path.read_text() == EXPECTED
    assert runner.invoke(command, ["--check", str(path)]).exit_code == 0


def test_cli_reports_syntax_errors_with_caret(tmp_path: Path) -> None:
    path = tmp_path / "bad.lmp"
    path.write_text("enum P { a @ b }\n")
    result = CliRunner().invoke(command, [str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{path}:1:12: error[E0003]: invalid character '@'" in result.output
    assert "^" in result.output and path.read_text() == "enum P { a @ b }\n"


def test_cli_missing_file_and_usage(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(command, [str(tmp_path / "nope.lmp")])
    assert missing.exit_code == 1
    assert f"{tmp_path / 'nope.lmp'}:1:1: error[E1003]: cannot read" in missing.output
    assert runner.invoke(command, []).exit_code == 2


def test_comments_inside_collapsed_constructs_are_kept_in_order() -> None:
    src = """module M() -> () {
  t = predict S(
    a = 1,  // first
    // standalone inside
    b = 2
  )
  /* before return */ return (x = t.y)
}
"""
    assert format_source(src, "a.lmp") == """module M() -> () {
  t = predict S(a = 1, b = 2)  // first
  // standalone inside
  /* before return */
  return (x = t.y)
}
"""
    once = format_source(src, "a.lmp")
    assert format_source(once, "a.lmp") == once


def test_a_bare_pass_stays_bare_and_parentheses_stay() -> None:
    src = "optimize M with a on d {\n  copro\n  then ensemble()\n}\n"
    assert format_source(src, "p.lmp") == src


def test_a_named_optimize_block_keeps_its_name() -> None:
    src = "optimize quick = M with a on d {\n  copro\n}\n"
    assert format_source(src, "p.lmp") == src


def test_a_dataset_of_split_files_has_no_path() -> None:
    src = 'dataset d = jsonl {\n  train: "train.jsonl"\n  dev: "dev.jsonl"\n}\n'
    assert format_source(src, "p.lmp") == src
    assert parse(src, "p.lmp")[0].decls[0].path is None


def test_a_field_prefix_is_kept() -> None:
    src = 'signature S {\n  in q: str "the question" prefix "Question:"\n  out a\n}\n'
    assert format_source(src, "p.lmp") == src
