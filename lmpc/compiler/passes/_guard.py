"""Proposal guards: drop the degenerate instructions a prompt model writes, re-ask, count.

Every pass that asks an LM for an instruction (COPRO, MIPROv2, and the reflective passes)
runs each proposal through a :class:`ProposalGuard`. A tiny prompt model — the embedded
270M base model — answers such requests with ``The new instruction.``, ``0.875``, ``-``
or a copy of an earlier candidate; each such candidate used to cost a full search. The
guard drops a proposal that is

- ``empty``;
- a ``number`` (``0.875``, ``-3``, ``80%``);
- ``not_prose``: fewer than three words, or mostly symbols;
- a ``duplicate`` of an earlier candidate (the original instruction included), compared
  case- and punctuation-insensitively;
- an ``echo`` of the meta-prompt: it repeats text the prompt model was shown (its own
  instructions, field descriptions, a tip, a demo);
- ``off_topic``: it shares no word with the task it was shown and gives no direction
  (``It is good news.``);

then asks again with a fresh rollout index (so the cache does not hand back the same
reply), at most ``max_reasks`` times, and counts every drop by reason for the report.

>>> seen = Shown(context="Write a new instruction. proposed_instruction: the new "
...              "instruction", topic="Route a support ticket to a team.")
>>> guard = ProposalGuard()
>>> [guard.verdict(t, ["Route the ticket."], seen) for t in
...  ["", "0.875", "-", "route the ticket", "The new instruction.", "It is good news.",
...   "Read the ticket and name the team that should handle it."]]
['empty', 'number', 'not_prose', 'duplicate', 'echo', 'off_topic', None]
>>> replies = iter(["0.875", "Send each ticket to the team that owns its topic."])
>>> guard.propose(lambda attempt: next(replies), ["Route the ticket."], seen)
'Send each ticket to the team that owns its topic.'
>>> guard.report()["dropped"]
{'number': 1}
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Re-asks after a dropped proposal (so up to 1 + MAX_REASKS calls per candidate slot).
MAX_REASKS = 2
#: Re-ask ``k`` of a slot asked at rollout ``r`` uses rollout ``r + k * REASK_STRIDE``,
#: away from the rollouts of the other slots.
REASK_STRIDE = 1000
MIN_WORDS = 3
EXAMPLES_KEPT = 5  # dropped texts quoted in the report
ECHO_SHARE = 0.7  # a proposal whose word trigrams are mostly in the prompt is an echo

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_NUMBER = re.compile(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)\s*%?")
# Words that make a sentence a direction even when it names nothing of the task.
_DIRECTIVE = frozenset(
    "you your given classify decide determine identify label read write answer return "
    "output extract choose select assign predict summarize respond route categorize "
    "analyze analyse consider think explain give find use pick state provide examine "
    "evaluate compare check make produce list describe infer judge rate sort tag".split())
_STOP = frozenset(
    "the a an and or of to in on for with is are be it its this that these those as at by "
    "from into each every any all not no".split())


def normalize(text: str) -> str:
    """Lower case, words only: how proposals are compared with each other and the prompt."""
    return " ".join(w.lower() for w in _WORD.findall(text))


def _stems(text: str) -> set[str]:
    """Content words cut to five letters (classify/classification, ticket/tickets)."""
    return {w[:5] for w in normalize(text).split() if w not in _STOP and len(w) >= 4}


@dataclass(frozen=True)
class Shown:
    """What the prompt model was shown for one proposal.

    ``context``: the meta-prompt apart from the earlier candidates (its instructions and
    field descriptions, a tip, demos, summaries) — a proposal repeating it is an echo.
    ``topic``: what the task is about (the signature, its instruction, demos, a data
    summary) — a proposal must share a word with it or give a direction.
    """

    context: str = ""
    topic: str = ""


@dataclass
class ProposalGuard:
    """Checks proposals against what the prompt model saw; keeps counts for the report.

    One guard per pass: its counts add up over every predictor and round.
    """

    max_reasks: int = MAX_REASKS
    asked: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)

    def verdict(self, text: str | None, earlier: list[str], shown: Shown) -> str | None:
        """Why ``text`` is degenerate (a reason name), or None when it is usable."""
        if text is None or not text.strip():
            return "empty"
        words = normalize(text)
        if _NUMBER.fullmatch(text.strip().strip(".")):
            return "number"
        letters = sum(ch.isalpha() for ch in text)
        if len(words.split()) < MIN_WORDS or letters < 0.5 * len(text.replace(" ", "")):
            return "not_prose"
        if any(words == normalize(e) for e in earlier if e):
            return "duplicate"
        if _echoes(words, shown.context):
            return "echo"
        if not (_stems(text) & _stems(shown.topic)) and not (set(words.split()) & _DIRECTIVE):
            return "off_topic"
        return None

    def propose(self, ask: Callable[[int], str | None], earlier: list[str],
                shown: Shown) -> str | None:
        """The first usable reply of ``ask(attempt)`` for attempt 0, 1, ..., or None.

        ``ask`` makes one LM call; attempt ``k > 0`` must use a fresh rollout index
        (``rollout_for``) so the cache does not return the dropped reply again.
        """
        for attempt in range(1 + self.max_reasks):
            text = ask(attempt)
            self.asked += 1
            reason = self.verdict(text, earlier, shown)
            if reason is None:
                self.kept += 1
                return text
            self.dropped[reason] += 1
            if len(self.examples) < EXAMPLES_KEPT:
                self.examples.append({"reason": reason, "text": (text or "")[:200]})
        return None

    def report(self) -> dict[str, Any]:
        """Counts for the pass report: asked, kept, dropped by reason, a few examples."""
        return {"asked": self.asked, "kept": self.kept, "dropped": dict(sorted(
            self.dropped.items())), "examples": list(self.examples)}


def _echoes(words: str, context: str) -> bool:
    """Whether normalized ``words`` repeat ``context``: as a whole, or most trigrams."""
    seen = normalize(context)
    if words and f" {words} " in f" {seen} ":
        return True
    grams = _trigrams(words)
    return bool(grams) and len(grams & _trigrams(seen)) >= ECHO_SHARE * len(grams)


def rollout_for(rollout: int, attempt: int) -> int:
    """The rollout index of re-ask ``attempt`` of a slot first asked at ``rollout``."""
    return rollout + attempt * REASK_STRIDE


def _trigrams(words: str) -> set[tuple[str, ...]]:
    parts = words.split()
    return {tuple(parts[i:i + 3]) for i in range(len(parts) - 2)}
