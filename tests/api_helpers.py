"""Shared by the API, serve and report tests: the quick start's program, built with a
scripted LM that routes tickets by keywords (through the real adapter and parser)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from lmpc.runtime.lm_types import LMError
from lmpc.runtime.scripted import ScriptedTransport, render_request

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

KEYWORDS = {
    "billing": ("refund", "charge", "invoice", "plan", "payment", "bill", "price"),
    "shipping": ("parcel", "deliver", "tracking", "package", "shipping", "courier"),
    "account": ("login", "log in", "logged", "password", "account", "profile", "email"),
    "technical": ("crash", "error", "bug", "slow", "broken", "sync", "app"),
}


def category_of(ticket: str) -> str:
    text = ticket.lower()
    for category, words in KEYWORDS.items():
        if any(word in text for word in words):
            return category
    return "technical"


def last_ticket(request: Any) -> str:
    """The ticket the request asks about: the text after its last ``Ticket:`` marker."""
    prompt = render_request(request)
    for marker in ("Ticket:", "[[ ## ticket ## ]]", "ticket:"):
        if marker in prompt:
            tail = prompt.rsplit(marker, 1)[1]
            return tail.strip().split("\n", 1)[0]
    return prompt


def keyword_reply(request: Any) -> str:
    """Right by keywords; a ticket that says FAIL makes the LM fail for good."""
    ticket = last_ticket(request)
    if "FAIL" in ticket:
        raise LMError("scripted: this ticket fails")
    if request.mode == "chat":  # a hosted model: the chat adapter's field headers
        return f"[[ ## category ## ]]\n{category_of(ticket)}\n\n[[ ## completed ## ]]"
    return " " + category_of(ticket)


def keyword_transport(**kwargs: Any) -> ScriptedTransport:
    return ScriptedTransport(fn=keyword_reply, **kwargs)


def copy_classify(folder: Path) -> Path:
    """examples/classify.lmp and its data in ``folder`` (its own project)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "classify.lmp", folder / "classify.lmp")
    shutil.copy(EXAMPLES / "data" / "classify.jsonl", folder / "data" / "classify.jsonl")
    (folder / "lmpc.toml").write_text("")  # marks the project root
    return folder / "classify.lmp"


def built_router(folder: Path, transport: Any = None) -> Path:
    """The quick start's artifact, built with the keyword LM (no cache)."""
    import lmpc

    source = copy_classify(folder)
    built = lmpc.build(source, output=folder / "build" / "Router.json", cache=False,
                       transport=transport or keyword_transport())
    return built.artifact


# ---------------------------------------------------------------- a MIPROv2 build

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n|\Z)", re.S)
_ASKED = re.compile(r"`\[\[ ## (\w+) ## \]\]`")
_LEVEL = re.compile(r"level (\d)")


def chat_reply(request: Any) -> str:
    """A chat model for the whole quick start under MIPROv2: it writes instructions
    ("level N"), answers the proposer's other questions, and routes a ticket right
    more often the higher the level its instructions carry — so trials differ."""
    system = request.messages[0]["content"]
    last = request.messages[-1]["content"]
    asked = [n for n in dict.fromkeys(_ASKED.findall(last)) if n != "completed"]
    given = dict(_FIELD.findall(last))
    out = {}
    for name in asked:
        if name == "proposed_instruction":
            out[name] = f"Route the ticket to its team, level {request.rollout % 4 + 1}."
        elif name == "category":
            ticket = given.get("ticket", "")
            level = _LEVEL.search(system)
            right = category_of(ticket)
            wrong = "account" if right != "account" else "billing"
            n = sum(map(ord, ticket)) % 4
            out[name] = right if n < (int(level.group(1)) if level else 1) else wrong
        else:
            out[name] = f"a {name} of the task"
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in out.items()) + \
        "[[ ## completed ## ]]"


MIPRO = ("mipro_v2(auto = none, num_candidates = 3, num_trials = 7, minibatch_size = 20, "
         "minibatch_full_eval_steps = 3, storage = \"memory\")")


def built_mipro_router(folder: Path) -> Path:
    """The quick start's program optimized by MIPROv2 on a scripted chat model."""
    import lmpc

    source = copy_classify(folder)
    text = source.read_text()
    text = text.replace("knn_fewshot(k = 4)", MIPRO).replace("lm: local", "lm: chat")
    text = 'lm chat = "openai/scripted" { temperature: 0.0 }\n' + text
    source.write_text(text)
    built = lmpc.build(source, output=folder / "build" / "Router.json", cache=False,
                       transport=ScriptedTransport(fn=chat_reply))
    return built.artifact
