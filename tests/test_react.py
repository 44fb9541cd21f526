"""ReAct: tools by import path, errors as observations, max iterations, trimming."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import add_tool, chat_reply, context, triage_program  # noqa: E402

from lmpc.runtime.errors import ToolNotAllowed  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402

TOOLS = '''
def lookup(account: str) -> str:
    return f"account {account}: enterprise plan, 500 seats"

def explode(account: str) -> str:
    raise ValueError("database unavailable")
'''


@pytest.fixture
def tool_dir(tmp_path: Path) -> Path:
    (tmp_path / "support_tools.py").write_text(TOOLS)
    return tmp_path


def react_program(max_iters: int = 4, **options: object):
    program = triage_program("react", options={"tools": ["lookup", "explode"],
                                               "max_iters": max_iters, **options})
    add_tool(program, "lookup", "support_tools:lookup", ["account"])
    add_tool(program, "explode", "support_tools:explode", ["account"])
    return program


def step(thought: str, tool: str, args: dict) -> str:
    return chat_reply(next_thought=thought, next_tool_name=tool, next_tool_args=json.dumps(args))


def test_react_loop_with_a_failing_tool_then_finish(tool_dir: Path) -> None:
    transport = ScriptedTransport(replies=[
        step("check the db", "explode", {"account": "acme"}),
        step("try lookup", "lookup", {"account": "acme"}),
        step("done", "finish", {}),
        chat_reply(reasoning="big customer", priority="high"),
    ])
    ctx = context(transport, base_dir=tool_dir, allow_tools=True)
    pred = run_module(react_program(), "Support", {"ticket": "acme is down"}, ctx)
    assert pred.outputs == {"priority": "high"}
    trajectory = pred.trace[0].outputs["trajectory"]
    assert "Observation 1: Error: ValueError: database unavailable" in trajectory
    assert "Observation 2: account acme: enterprise plan, 500 seats" in trajectory
    assert "Action 3: finish({})" in trajectory
    extract = transport.requests[-1].messages[-1]["content"]
    assert "[[ ## trajectory ## ]]" in extract and "enterprise plan" in extract
    assert ctx.stats.get("tool_errors") == 1
    assert len(pred.trace[0].call_ids) == 4


def test_react_stops_at_max_iters_then_extracts(tool_dir: Path) -> None:
    def fn(request: LMRequest) -> str:
        if "next_tool_name" in request.messages[0]["content"]:
            return step("again", "lookup", {"account": "x"})
        return chat_reply(reasoning="gave up", priority="medium")

    transport = ScriptedTransport(fn=fn)
    ctx = context(transport, base_dir=tool_dir, allow_tools=True)
    pred = run_module(react_program(max_iters=3), "Support", {"ticket": "?"}, ctx)
    assert pred.outputs == {"priority": "medium"}
    assert len(transport.requests) == 4  # 3 turns + extract
    assert ctx.stats.get("react_max_iters") == 1


def test_react_bad_arguments_and_unreadable_replies_become_observations(tool_dir: Path) -> None:
    transport = ScriptedTransport(replies=[
        step("oops", "lookup", {"acct": "x"}),
        "gibberish", "more gibberish",  # chat, then the JSON fallback, both unreadable
        step("done", "finish", {}),
        chat_reply(reasoning="r", priority="low"),
    ])
    ctx = context(transport, base_dir=tool_dir, allow_tools=True)
    pred = run_module(react_program(), "Support", {"ticket": "t"}, ctx)
    trajectory = pred.trace[0].outputs["trajectory"]
    assert "has no parameter(s) acct" in trajectory
    assert "Observation 2: Error: predictor Support.t" in trajectory
    assert pred.outputs == {"priority": "low"}


def test_tools_need_permission(tool_dir: Path) -> None:
    transport = ScriptedTransport(default=step("x", "finish", {}))
    with pytest.raises(ToolNotAllowed, match="--allow-tools"):
        run_module(react_program(), "Support", {"ticket": "t"},
                   context(transport, base_dir=tool_dir))
    allowed_one = context(transport, base_dir=tool_dir, allow_tools={"lookup"})
    with pytest.raises(ToolNotAllowed, match="'explode'"):
        run_module(react_program(), "Support", {"ticket": "t"}, allowed_one)
    assert transport.requests == []  # refused before any LM call


def test_trajectory_is_trimmed_oldest_first_when_over_budget(tool_dir: Path) -> None:
    long_thought = "word " * 400

    def fn(request: LMRequest) -> str:
        if "next_tool_name" in request.messages[0]["content"]:
            return step(long_thought, "lookup", {"account": "x"})
        return chat_reply(reasoning="r", priority="low")

    transport = ScriptedTransport(fn=fn)
    ctx = context(transport, base_dir=tool_dir, allow_tools=True)
    program = react_program(max_iters=5, max_context_tokens=1500)
    pred = run_module(program, "Support", {"ticket": "t"}, ctx)
    assert pred.outputs == {"priority": "low"}
    last_turn = transport.requests[4].messages[-1]["content"]
    assert "steps were dropped to fit the context" in last_turn
    assert "Thought 1:" not in last_turn and "Thought 4:" in last_turn
    assert ctx.stats.get("react_trimmed_steps") > 0
    assert all(len(r.messages[-1]["content"]) // 4 < 1500 for r in transport.requests)


def test_on_a_base_model_each_step_is_held_to_the_chosen_tools_parameters(
        tool_dir: Path) -> None:
    from runtime_programs import TEXT_LM

    transport = ScriptedTransport(replies=[
        ' look it up\nNext Tool Name: lookup\nNext Tool Args: {"account": "acme"}',
        " done\nNext Tool Name: finish\nNext Tool Args: {}",
        " big customer\nPriority: high",
    ])
    ctx = context(transport, lm=TEXT_LM, base_dir=tool_dir, allow_tools=True)
    pred = run_module(react_program(), "Support", {"ticket": "acme is down"}, ctx)
    assert pred.outputs == {"priority": "high"}
    assert "Observation 1: account acme: enterprise plan, 500 seats" in (
        pred.trace[0].outputs["trajectory"])
    step_grammar = transport.requests[0].settings["grammar"]
    assert transport.requests[1].settings["grammar"] == step_grammar
    root, *rules = step_grammar.splitlines()
    assert root == ('root ::= " "? v0 "\\nNext Tool Name: " ( '
                    '"lookup" "\\nNext Tool Args: " args0 | '
                    '"explode" "\\nNext Tool Args: " args1 | '
                    '"finish" "\\nNext Tool Args: " args2 ) "\\n"?')
    assert 'args0 ::= "{" jws "\\"account\\"" jws ":" jws field-str jws "}"' in rules
    assert 'args2 ::= "{" jws "}"' in rules
    # the extract step is an ordinary signature: its own field grammar
    assert "Priority: " in transport.requests[2].settings["grammar"]
