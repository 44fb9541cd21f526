"""``lmpc test`` through click's CliRunner, with a scripted transport handed in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import chat_reply  # noqa: E402

from lmpc.cli import main  # noqa: E402
from lmpc.compiler.artifact import Artifact, write_artifact  # noqa: E402
from lmpc.compiler.check.program import load_program  # noqa: E402
from lmpc.runtime.lm_types import LMError, LMRequest  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402

HEADER = """\
lm chat = "openai/gpt-4o-mini"

enum Priority { low, medium, high }

signature Triage {
  in ticket: str
  out priority: Priority
  out summary: str
  out score: float
  out count: int
  out tags: list[str]
}

module Support(ticket: str)
    -> (priority: Priority, summary: str, score: float, count: int, tags: list[str]) {
  t = predict Triage(ticket = ticket)
  return (priority = t.priority, summary = t.summary, score = t.score, count = t.count,
          tags = t.tags)
}
"""
HEADER_LINES = HEADER.count("\n")

# what the scripted model answers, by ticket
ANSWERS = {
    "site down": dict(priority="high", summary="Site is down for everyone", score=0.9,
                      count=3, tags='["outage", "web"]'),
    "typo": dict(priority="low", summary="A typo on the pricing page", score=0.1,
                 count=0, tags='["docs"]'),
}


def reply(request: LMRequest) -> str:
    prompt = request.messages[-1]["content"]
    if "explode" in prompt:
        raise LMError("the scripted model is down")
    for ticket, fields in ANSWERS.items():
        if ticket in prompt:
            return chat_reply(**fields)
    return "no fields at all"


def source(tmp_path: Path, tests: str, name: str = "t.lmp") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + tests)
    return path


def lmpc_test(args: list[str]) -> Result:
    return CliRunner().invoke(main, ["test", *args, "--no-cache"],
                              obj={"transport": ScriptedTransport(fn=reply)})


def one_test(tmp_path: Path, expect: str, ticket: str = "site down") -> Result:
    test = f'\ntest "t" {{\n  Support(ticket = "{ticket}")\n  expect {expect}\n}}\n'
    return lmpc_test([str(source(tmp_path, test))])


def test_passing_tests_exit_0(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "outage is high" { Support(ticket = "site down") '
                            'expect priority == high, summary contains "down" }\n'
                            'test "typo is low" { Support(ticket = "typo") '
                            'expect priority == low }\n')
    result = lmpc_test([str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["PASS outage is high", "PASS typo is low",
                                          "2 passed, 0 failed"]


def test_failing_test_names_value_expectation_and_location(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "typo is high" {\n  Support(ticket = "typo")\n'
                            '  expect priority == high\n}\n'
                            'test "outage" { Support(ticket = "site down") '
                            'expect priority == high }\n')
    result = lmpc_test([str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    expect_line = HEADER_LINES + 4
    assert lines[0] == (f"FAIL typo is high: priority was 'low', expected == 'high' "
                        f"({path}:{expect_line})")
    assert lines[1:] == ["PASS outage", "1 passed, 1 failed"]


@pytest.mark.parametrize("expect", [
    "priority == high", "priority != low", 'summary contains "down"',
    'tags contains "outage"', 'summary matches "^Site .* everyone$"', "score < 1",
    "score <= 0.9", "count > 2", "count >= 3", "count == 3", "score == 0.9",
])
def test_each_op_passes(tmp_path: Path, expect: str) -> None:
    result = one_test(tmp_path, expect)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"


@pytest.mark.parametrize(("expect", "message"), [
    ("priority == low", "priority was 'high', expected == 'low'"),
    ("priority != high", "priority was 'high', expected != 'high'"),
    ('summary contains "up"', "summary was 'Site is down for everyone', expected contains 'up'"),
    ('tags contains "docs"', "tags was ['outage', 'web'], expected contains 'docs'"),
    ('summary matches "^down"', "summary was 'Site is down for everyone', expected matches"),
    ("score < 0.5", "score was 0.9, expected < 0.5"),
    ("score <= 0.89", "score was 0.9, expected <= 0.89"),
    ("count > 3", "count was 3, expected > 3"),
    ("count >= 4", "count was 3, expected >= 4"),
    ('summary > 1', "expected > 1: > compares numbers"),
    ('summary matches "("', "bad regular expression"),
])
def test_each_op_fails_with_a_message(tmp_path: Path, expect: str, message: str) -> None:
    result = one_test(tmp_path, expect)
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL t: ")
    assert message in result.stdout.splitlines()[0]
    assert result.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_lm_failure_is_a_fail_not_a_crash(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "boom" { Support(ticket = "explode") expect count == 1 }\n'
                            'test "garbled" { Support(ticket = "??") expect count == 1 }\n'
                            'test "ok" { Support(ticket = "typo") expect count == 0 }\n')
    result = lmpc_test([str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL boom: ") and "the scripted model is down" in lines[0]
    assert lines[0].endswith(f"({path}:{HEADER_LINES + 2})")
    assert lines[1].startswith("FAIL garbled: ")
    assert lines[2:] == ["PASS ok", "1 passed, 2 failed"]
    assert "Traceback" not in result.output


def test_json_output(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "a" { Support(ticket = "typo") expect priority == low }\n'
                            'test "b" { Support(ticket = "typo") expect count > 0 }\n')
    result = lmpc_test([str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["passed"], report["failed"]) == (1, 1)
    first, second = report["results"]
    assert first["name"] == "a" and first["passed"] and first["message"] is None
    assert first["outputs"]["priority"] == "low"
    assert not second["passed"] and "count was 0, expected > 0" in second["message"]


def test_artifact_with_tests_from_a_source(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "typo is low" { Support(ticket = "typo") '
                            'expect priority == low }\n')
    program, _, _ = load_program(path)
    assert program is not None
    program.tests = []  # an artifact keeps no tests
    artifact = write_artifact(Artifact(program="Support", ir=program), tmp_path / "a.json")
    result = lmpc_test([str(artifact), "--tests", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["PASS typo is low", "1 passed, 0 failed"]
    bare = lmpc_test([str(artifact)])
    assert bare.exit_code == 1
    assert "no test blocks" in bare.stderr and "--tests FILE.lmp" in bare.stderr


def test_program_filters_tests_by_module(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "a" { Support(ticket = "typo") expect count == 0 }\n')
    assert lmpc_test([str(path), "--program", "Support"]).exit_code == 0
    result = lmpc_test([str(path), "--program", "Nope"])
    assert result.exit_code == 1
    assert "no module named 'Nope'" in result.stderr


def test_bad_file_prints_diagnostics(tmp_path: Path) -> None:
    path = source(tmp_path, '\ntest "a" { Support(ticket = "typo") expect colour == red }\n')
    result = lmpc_test([str(path)])
    assert result.exit_code == 1
    assert "error[" in result.stderr and "colour" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


def test_missing_file_and_no_tests_are_one_line_errors(tmp_path: Path) -> None:
    missing = lmpc_test([str(tmp_path / "nope.lmp")])
    assert missing.exit_code == 1
    assert missing.stderr == f"error: {tmp_path / 'nope.lmp'}: no such file\n"
    empty = lmpc_test([str(source(tmp_path, ""))])
    assert empty.exit_code == 1
    assert "no test blocks" in empty.stderr
