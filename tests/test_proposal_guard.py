"""The proposal guard: degenerate instructions are dropped, re-asked, counted.

A scripted prompt model answers the way the 270M base model did (``The new
instruction.``, ``0.875``, ``-``, a copy of the original, off-topic prose) on its first
attempts and a real instruction afterwards; COPRO and MIPROv2 keep only the real ones,
re-ask at fresh rollout indexes, never more than ``MAX_REASKS`` times per slot, and
report what they dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, examples, pass_context  # noqa: E402

from lmpc.compiler.passes._guard import (  # noqa: E402
    MAX_REASKS,
    REASK_STRIDE,
    ProposalGuard,
    Shown,
)
from lmpc.compiler.passes.copro import copro  # noqa: E402
from lmpc.compiler.passes.mipro_v2 import mipro_v2  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402

JUNK = ["The new instruction.", "0.875", "-", "Classify the sentiment.", "It is good news."]
TEXTS = [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(24)]


def junk_then_real(request: LMRequest, text: str, name: str) -> str | None:
    """Attempt 0 of each slot is junk (cycling through JUNK); re-asks are real."""
    if name == "proposed_instruction":
        slot, attempt = request.rollout % REASK_STRIDE, request.rollout // REASK_STRIDE
        if attempt == 0:
            return JUNK[slot % len(JUNK)]
        return f"Decide whether the text is positive or negative (slot {slot})"
    if name in ("notes", "summary", "description", "role"):
        return f"a {name} of the task"
    return None


def always_junk(request: LMRequest, text: str, name: str) -> str | None:
    if name == "proposed_instruction":
        return JUNK[request.rollout % len(JUNK)]
    return junk_then_real(request, text, name)


def proposal_requests(world: World) -> list[LMRequest]:
    return [r for r in world.requests if "`proposed_instruction`" in r.messages[0]["content"]]


def _ctx(world: World) -> Any:
    return pass_context(world, classify_program(), "Classify", examples(TEXTS[:12]),
                        examples(TEXTS[12:]))


def test_mipro_drops_junk_re_asks_and_keeps_the_candidate_count() -> None:
    world = World(junk_then_real)
    result = mipro_v2(classify_program(), _ctx(world), auto=None, num_candidates=5,
                      num_trials=3, max_bootstrapped_demos=0, max_labeled_demos=0,
                      storage="memory")
    instructions = result.report["instructions"]["Classify.c"]
    assert len(instructions) == 5  # the original + 4 proposals, as projected
    assert instructions[0] == "Classify the sentiment."
    assert all(t.startswith("Decide whether") for t in instructions[1:])
    guard = result.report["proposer"]["guard"]
    assert guard["asked"] == 8 and guard["kept"] == 4
    assert guard["dropped"] == {"duplicate": 1, "not_prose": 1, "number": 1, "off_topic": 1}
    rollouts = sorted(r.rollout for r in proposal_requests(world))
    assert rollouts == [1, 2, 3, 4, 1001, 1002, 1003, 1004]  # each re-ask a fresh rollout


def test_copro_drops_junk_and_reports_it() -> None:
    world = World(junk_then_real)
    result = copro(classify_program(), _ctx(world), breadth=3, depth=1)
    scored = [c["instruction"] for c in result.report["candidates"]]
    assert scored[0] == "Classify the sentiment."
    assert all(t.startswith("Decide whether") for t in scored[1:]) and len(scored) == 3
    assert result.report["guard"]["kept"] == 2
    assert sum(result.report["guard"]["dropped"].values()) == 2


def test_re_asks_are_bounded_and_an_all_junk_slot_is_skipped() -> None:
    world = World(always_junk)
    result = mipro_v2(classify_program(), _ctx(world), auto=None, num_candidates=3,
                      num_trials=2, max_bootstrapped_demos=0, max_labeled_demos=0,
                      storage="memory")
    assert result.report["instructions"]["Classify.c"] == ["Classify the sentiment."]
    assert len(proposal_requests(world)) == 2 * (1 + MAX_REASKS)
    guard = result.report["proposer"]["guard"]
    assert guard["kept"] == 0 and sum(guard["dropped"].values()) == 6
    assert guard["examples"][0]["text"] in JUNK


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("   ", "empty"), (None, "empty"),
    ("0.875", "number"), ("-3", "number"), ("80%", "number"),
    ("-", "not_prose"), ("Instruction:", "not_prose"), ("#### ---- !!!!", "not_prose"),
    ("classify   the SENTIMENT!", "duplicate"),
    ("the new instruction", "echo"),
    ("Write only the instruction, please.", None),  # short overlap: a real direction
    ("It is good news.", "off_topic"),
    ("Decide whether the review sounds happy or unhappy.", None),
    ("Label the sentiment of each text as positive or negative.", None),
])
def test_verdicts(text: str | None, reason: str | None) -> None:
    shown = Shown(context="Write a new instruction for one step. proposed_instruction: "
                          "the new instruction",
                  topic="Inputs: text (str) Outputs: label (str) Classify the sentiment.")
    assert ProposalGuard().verdict(text, ["Classify the sentiment."], shown) == reason
