"""``lmpc run`` through click's CliRunner, with a scripted transport handed in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_server import agent_reply

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import chat_reply, triage_program  # noqa: E402

from lmpc.cli import main  # noqa: E402
from lmpc.compiler.artifact import Artifact, write_artifact  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    program = triage_program()
    program.base_dir = str(tmp_path)
    return write_artifact(Artifact(program="Support", ir=program), tmp_path / "support.json")


def reply(request: LMRequest) -> str:
    if request.mode == "text":
        return " medium"
    return chat_reply(priority="high" if "down" in request.messages[-1]["content"] else "low")


def run(args: list[str], transport: ScriptedTransport | None = None):
    transport = transport or ScriptedTransport(fn=reply)
    return CliRunner().invoke(main, ["run", *args, "--no-cache"],
                              obj={"transport": transport})


def test_run_one_input(artifact: Path) -> None:
    result = run([str(artifact), "--input", '{"ticket": "site down"}'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"priority": "high"}


def test_run_input_file_one_line_per_row(artifact: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"ticket": "site down"}\n\n{"ticket": "typo"}\n')
    result = run([str(artifact), "--input-file", str(rows), "--threads", "2"])
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"priority": "high"}, {"priority": "low"}]


def test_lm_override_switches_to_the_completion_layout(artifact: Path) -> None:
    transport = ScriptedTransport(fn=reply)
    result = run([str(artifact), "--input", '{"ticket": "x"}', "--lm", "local"], transport)
    assert json.loads(result.stdout) == {"priority": "medium"}
    assert transport.requests[0].model == "local/gemma-3-270m"


def test_bad_row_names_file_and_line(artifact: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"ticket": "a"}\n{"ticket": \n')
    result = run([str(artifact), "--input-file", str(rows)])
    assert result.exit_code == 1
    assert f"{rows}:2: not valid JSON" in result.stderr
    assert "Traceback" not in result.output


def test_failed_row_prints_null_and_exits_1(artifact: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"ticket": "down"}\n{"ticket": "unparseable"}\n')
    transport = ScriptedTransport(fn=lambda r: "no fields here" if "unparseable" in
                                  r.messages[-1]["content"] else reply(r))
    result = run([str(artifact), "--input-file", str(rows)], transport)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ['{"priority": "high"}', "null"]
    assert f"{rows}:2: " in result.stderr


def test_a_missing_input_is_an_error_before_any_lm_call_and_prints_no_null(
        artifact: Path, tmp_path: Path) -> None:
    transport = ScriptedTransport(fn=reply)
    result = run([str(artifact), "--input", '{"tickt": "site down"}'], transport)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: --input: module Support needs input 'ticket' (str); the input has 'tickt' "
        "(is 'tickt' a misspelling of 'ticket'?)")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"ticket": "down"}\n{"other": 1}\n{}\n')
    result = run([str(artifact), "--input-file", str(rows)], transport)
    assert result.exit_code == 1 and result.stdout == ""
    assert [line.split(": module")[0] for line in result.stderr.splitlines()] == [
        f"error: {rows}:2", f"error: {rows}:3"]
    assert transport.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json", "--input", "{}"], "missing.json: no such file"),
        (["{artifact}", "--input", "[1]"], "an input must be a JSON object"),
        (["{artifact}", "--input", "{}", "--program", "Nope"], "no module named 'Nope'"),
    ],
)
def test_errors_are_one_line_no_traceback(artifact: Path, args: list[str], message: str) -> None:
    result = run([a.replace("{artifact}", str(artifact)) for a in args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_not_an_artifact(tmp_path: Path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text("{}")
    result = run([str(bogus), "--input", "{}"])
    assert result.exit_code == 1 and "not an lmpc artifact" in result.stderr


def test_needs_exactly_one_input_option(artifact: Path) -> None:
    result = run([str(artifact)])
    assert result.exit_code == 2
    assert "exactly one of --input" in result.output


# ---------------------------------------------------------------- the repo's examples

EXAMPLES = Path(__file__).parent.parent / "examples"


def needs_checker() -> None:
    pytest.importorskip("lmpc.compiler.check.program")


def test_run_lmp_classify_uses_the_completion_layout() -> None:
    needs_checker()
    transport = ScriptedTransport(default=" billing")
    result = run([str(EXAMPLES / "classify.lmp"), "--input",
                  '{"ticket": "Refund my last charge"}'], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"category": "billing"}
    request = transport.requests[0]
    assert request.mode == "text" and request.prompt.endswith("Refund my last charge\nCategory:")
    assert "Category — one of: billing, technical, shipping, account.\n" in request.prompt
    assert request.settings["max_tokens"] == 8  # the LM's own cap is below the type budget


def test_run_lmp_rag_retrieves_and_reasons() -> None:
    needs_checker()
    transport = ScriptedTransport(default=" The passages say so.\nAnswer: at the front desk")
    result = run([str(EXAMPLES / "rag.lmp"), "--input",
                  '{"question": "Where do I pay a fine?"}'], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"answer": "at the front desk"}
    assert "Context:\n[1] " in transport.requests[0].prompt  # three numbered passages


def test_run_lmp_agent_needs_allow_tools_then_calls_the_real_tool() -> None:
    needs_checker()

    fn = agent_reply

    args = [str(EXAMPLES / "agent.lmp"), "--input", '{"question": "10 miles in km?"}']
    refused = run(args, ScriptedTransport(fn=fn))
    assert refused.exit_code == 1 and "--allow-tools" in refused.stderr
    transport = ScriptedTransport(fn=fn)
    result = run([*args, "--allow-tools"], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"answer": 16.0934}
    assert any("Observation 1: 16.0934" in (r.prompt or "") for r in transport.requests)


def test_run_lmp_with_errors_prints_diagnostics(tmp_path: Path) -> None:
    needs_checker()
    bad = tmp_path / "bad.lmp"
    bad.write_text("module M(x: str) -> (y: str) {\n  a = predict Nope(x = x)\n}\n")
    result = run([str(bad), "--input", '{"x": "1"}'])
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.stderr and "Traceback" not in result.output


def test_best_of_n_in_a_lmp_file_gets_its_reward_metric(tmp_path: Path) -> None:
    source = tmp_path / "bon.lmp"
    source.write_text(
        'lm fast = "openai/gpt-4o-mini"\n'
        'signature Title = "topic: str -> title: str"\n'
        "metric shouty = regex(title, pattern = \"^[A-Z ]+$\")\n"
        "module Headline(topic: str) -> (title: str) {\n"
        "  t = best_of_n(n = 3, reward = shouty, threshold = 1.0) Title(topic = topic)\n"
        "  return (title = t.title)\n"
        "}\n"
    )
    answers = iter(["quiet words", "LOUD WORDS", "never asked"])
    transport = ScriptedTransport(fn=lambda request: chat_reply(title=next(answers)))
    result = run([str(source), "--input", '{"topic": "x"}'], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"title": "LOUD WORDS"}
    assert len(transport.requests) == 2  # stopped at the threshold
