"""Each predictor kind, through the real adapters and a scripted LM."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import chat_reply, context, triage_program  # noqa: E402

from lmpc.runtime.errors import RuntimeFailure  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402


def test_chain_of_thought_puts_reasoning_first_and_keeps_it_in_the_trace() -> None:
    transport = ScriptedTransport(replies=[chat_reply(reasoning="Outage.", priority="high")])
    pred = run_module(triage_program("chain_of_thought"), "Support", {"ticket": "Down"},
                      context(transport))
    assert pred.outputs == {"priority": "high"}
    assert pred.trace[0].outputs == {"reasoning": "Outage.", "priority": "high"}
    system = transport.requests[0].messages[0]["content"]
    assert system.index("`reasoning`") < system.index("`priority`")


def _by_rollout(replies: dict[int, str]):
    def fn(request: LMRequest) -> str:
        return replies[request.rollout]
    return fn


def test_best_of_n_samples_fresh_rollouts_and_stops_at_threshold() -> None:
    transport = ScriptedTransport(fn=_by_rollout({0: chat_reply(priority="low"),
                                                  1: chat_reply(priority="high"),
                                                  2: chat_reply(priority="medium")}))
    reward = {"is_high": lambda inputs, outputs: outputs["priority"] == "high"}
    program = triage_program("best_of_n", options={"n": 3, "reward": "is_high",
                                                   "threshold": 1.0})
    pred = run_module(program, "Support", {"ticket": "x"}, context(transport, reward_fns=reward))
    assert pred.outputs == {"priority": "high"}
    assert [r.rollout for r in transport.requests] == [0, 1]  # stopped at the threshold
    assert all(r.settings["temperature"] == 1.0 for r in transport.requests)


def test_best_of_n_keeps_the_best_when_none_reaches_the_threshold() -> None:
    scores = {"low": 0.1, "medium": 0.6, "high": 0.3}
    transport = ScriptedTransport(fn=_by_rollout({0: chat_reply(priority="low"),
                                                  1: chat_reply(priority="medium"),
                                                  2: chat_reply(priority="high")}))
    program = triage_program("best_of_n", options={"n": 3, "reward": "r", "threshold": 0.9})
    ctx = context(transport, reward_fns={"r": lambda i, o: scores[o["priority"]]})
    assert run_module(program, "Support", {"ticket": "x"}, ctx).outputs == {"priority": "medium"}


def test_best_of_n_without_its_reward_is_a_clear_error() -> None:
    program = triage_program("best_of_n", options={"n": 2, "reward": "acc"})
    with pytest.raises(RuntimeFailure, match="needs a reward function.*'acc'"):
        run_module(program, "Support", {"ticket": "x"}, context(ScriptedTransport()))


def test_refine_feeds_back_the_previous_attempt() -> None:
    transport = ScriptedTransport(replies=[chat_reply(priority="low"),
                                           chat_reply(priority="high")])
    program = triage_program("refine", options={"n": 3, "reward": "r", "threshold": 1.0})
    ctx = context(transport, reward_fns={"r": lambda i, o: o["priority"] == "high"})
    assert run_module(program, "Support", {"ticket": "x"}, ctx).outputs == {"priority": "high"}
    second = transport.requests[1].messages[-1]["content"]
    assert "[[ ## previous_attempt ## ]]\npriority: low" in second
    assert "scored 0.00" in second
    assert transport.requests[0].rollout != transport.requests[1].rollout


def test_multi_chain_comparison_compares_m_attempts() -> None:
    attempts = {0: chat_reply(reasoning="a", priority="low"),
                1: chat_reply(reasoning="b", priority="high")}

    def fn(request: LMRequest) -> str:
        if "[[ ## attempts ## ]]" in request.messages[-1]["content"]:
            return chat_reply(rationale="b is right", priority="high")
        return attempts[request.rollout]

    transport = ScriptedTransport(fn=fn)
    program = triage_program("multi_chain_comparison", options={"m": 2})
    pred = run_module(program, "Support", {"ticket": "x"}, context(transport))
    assert pred.outputs == {"priority": "high"}
    assert pred.trace[0].outputs["reasoning"] == "b is right"
    final = transport.requests[-1].messages[-1]["content"]
    assert "Attempt 1:\nreasoning: a\npriority: low" in final
    assert len(transport.requests) == 3


def test_hide_example_drops_the_demo_of_the_running_example() -> None:
    demos = [{"ticket": "secret", "priority": "high"}, {"ticket": "other", "priority": "low"}]
    transport = ScriptedTransport(default=chat_reply(priority="high"))
    ctx = context(transport, hide_example={"ticket": "secret"})
    run_module(triage_program(demos=demos), "Support", {"ticket": "secret"}, ctx)
    shown = "\n".join(m["content"] for m in transport.requests[0].messages[1:-1])
    assert "other" in shown and "secret" not in shown


def test_predictor_lm_override_and_attribution() -> None:
    transport = ScriptedTransport(default=" low")
    program = triage_program(lm="local")  # the task LM is the chat model
    ctx = context(transport, attribution={"pass": "bootstrap", "step": 2})
    run_module(program, "Support", {"ticket": "x"}, ctx)
    assert transport.requests[0].model == "local/gemma-3-270m"
    assert transport.requests[0].mode == "text"
    record = ctx.client.usage.records[0]
    assert record.attribution == {"pass": "bootstrap", "step": 2, "module": "Support",
                                  "predictor": "Support.t"}


def test_unknown_lm_name_is_a_runtime_failure() -> None:
    with pytest.raises(RuntimeFailure, match=re.escape("unknown LM 'gpt9'")):
        run_module(triage_program(lm="gpt9"), "Support", {"ticket": "x"},
                   context(ScriptedTransport()))
