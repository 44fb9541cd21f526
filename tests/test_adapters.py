"""Adapters through the real LM client with a scripted transport."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import (  # noqa: E402
    PRIORITY,
    STR,
    TEXT_LM,
    chat_reply,
    context,
    triage_program,
)

from lmpc.ir import LMIR, Demo, ExprIR, FieldIR, TypeRef  # noqa: E402
from lmpc.runtime.adapters import choose  # noqa: E402
from lmpc.runtime.errors import ParseFailure  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402

DEMOS = [{"ticket": "Site down for everyone", "priority": "high"},
         {"ticket": "Typo on the about page", "priority": "low"}]


def test_auto_picks_completion_for_text_models_and_chat_otherwise() -> None:
    assert choose("auto", TEXT_LM).name == "completion"
    assert choose("auto", LMIR(name="x", model="openai/gpt-4o")).name == "chat"
    assert choose("auto", LMIR(name="x", model="hf/base", model_type="text")).name == "completion"
    assert choose("json", TEXT_LM).name == "json"


def test_chat_adapter_headers_and_demo_turns() -> None:
    transport = ScriptedTransport(replies=[chat_reply(priority="High")])
    pred = run_module(triage_program(demos=DEMOS), "Support", {"ticket": "Login broken"},
                      context(transport))
    assert pred.outputs == {"priority": "high"}
    messages = transport.requests[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant",
                                             "user"]
    assert "Decide how urgent a support ticket is." in messages[0]["content"]
    assert "one of: low, medium, high" in messages[0]["content"]
    assert "[[ ## ticket ## ]]\nLogin broken" in messages[-1]["content"]
    assert messages[2]["content"].startswith("[[ ## priority ## ]]\nhigh")
    assert messages[2]["content"].endswith("[[ ## completed ## ]]")


def test_malformed_chat_reply_falls_back_to_json_and_is_counted() -> None:
    transport = ScriptedTransport(replies=["It is high, I think", '{"priority": "medium"}'])
    ctx = context(transport)
    pred = run_module(triage_program(), "Support", {"ticket": "Slow page"}, ctx)
    assert pred.outputs == {"priority": "medium"}
    assert ctx.stats.get("adapter_fallbacks") == 1
    assert "JSON object" in transport.requests[1].messages[-1]["content"]
    assert len(pred.trace[0].call_ids) == 2


def test_both_formats_failing_gives_a_precise_error() -> None:
    transport = ScriptedTransport(replies=["no idea", '{"priority": "urgent"}'])
    ctx = context(transport)
    with pytest.raises(ParseFailure) as err:
        run_module(triage_program(), "Support", {"ticket": "x"}, ctx)
    message = str(err.value)
    assert "Support.t" in message
    assert "lacks field header(s) priority" in message
    assert "expected Priority (one of: low, medium, high), got 'urgent'" in message
    assert ctx.stats.get("adapter_fallbacks") == 1


def test_json_adapter_on_its_own() -> None:
    program = triage_program(demos=DEMOS)
    program.predictors["Support.t"].adapter = "json"
    transport = ScriptedTransport(replies=['```json\n{"priority": "LOW"}\n```'])
    pred = run_module(program, "Support", {"ticket": "x"}, context(transport))
    assert pred.outputs == {"priority": "low"}
    assert transport.requests[0].messages[2]["content"] == '{"priority": "high"}'


def test_completion_layout_for_base_models() -> None:
    transport = ScriptedTransport(replies=[" high\nTicket: another one"])
    pred = run_module(triage_program(demos=DEMOS), "Support", {"ticket": "Data loss!"},
                      context(transport, lm=TEXT_LM))
    assert pred.outputs == {"priority": "high"}
    request = transport.requests[0]
    assert request.mode == "text"
    assert request.prompt == (
        "Decide how urgent a support ticket is.\n"
        "Priority — one of: low, medium, high.\n"
        "\n"
        "Ticket: Site down for everyone\nPriority: high\n"
        "\n"
        "Ticket: Typo on the about page\nPriority: low\n"
        "\n"
        "Ticket: Data loss!\nPriority:"
    )
    assert request.settings["stop"][0] == "\n"  # one enum value: a newline ends it
    assert request.settings["max_tokens"] <= 16


def test_completion_several_outputs_in_one_call() -> None:
    outputs = [FieldIR(name="priority", type=PRIORITY),
               FieldIR(name="reason", type=STR, desc="one sentence"),
               FieldIR(name="score", type=TypeRef(kind="int"))]
    transport = ScriptedTransport(replies=[" medium\nReason: slow but works.\nScore: 6"])
    program = triage_program(outputs=outputs)
    pred = run_module(program, "Support", {"ticket": "Slow"}, context(transport, lm=TEXT_LM))
    assert pred.outputs == {"priority": "medium", "reason": "slow but works.", "score": 6}
    settings = transport.requests[0].settings
    assert settings["stop"][0] == "\n\n"
    assert "\nTicket:" in settings["stop"]
    assert 12 < settings["max_tokens"] <= 300


def test_completion_missing_field_is_a_parse_failure() -> None:
    outputs = [FieldIR(name="priority", type=PRIORITY), FieldIR(name="reason", type=STR)]
    transport = ScriptedTransport(replies=[" low", "\n\nTicket: drifted away"])
    ctx = context(transport, lm=TEXT_LM)
    with pytest.raises(ParseFailure, match="completion lacks line"):
        run_module(triage_program(outputs=outputs), "Support", {"ticket": "x"}, ctx)
    assert ctx.stats.get("adapter_fallbacks") == 0  # no JSON fallback for base models
    assert ctx.stats.get("completion_continuations") == 1


def test_completion_continues_at_the_missing_label() -> None:
    outputs = [FieldIR(name="reason", type=STR), FieldIR(name="priority", type=PRIORITY)]
    # a base model writes the first field, then stops before the next label
    transport = ScriptedTransport(replies=[" the site is down for everyone", " high"])
    ctx = context(transport, lm=TEXT_LM)
    pred = run_module(triage_program(outputs=outputs), "Support", {"ticket": "x"}, ctx)
    assert pred.outputs == {"reason": "the site is down for everyone", "priority": "high"}
    second = transport.requests[1].prompt
    assert second == transport.requests[0].prompt + " the site is down for everyone\nPriority:"
    assert ctx.stats.get("completion_continuations") == 1


def test_user_max_tokens_caps_the_type_budget() -> None:
    lm = TEXT_LM.model_copy(update={"settings": {"max_tokens": 3, "temperature": 0.0}})
    transport = ScriptedTransport(replies=[" low"])
    run_module(triage_program(), "Support", {"ticket": "x"}, context(transport, lm=lm))
    assert transport.requests[0].settings["max_tokens"] == 3
    assert transport.requests[0].settings["temperature"] == 0.0


def test_prompt_memo_sees_in_place_edits_of_instructions_and_demos() -> None:
    program = triage_program("chain_of_thought")
    transport = ScriptedTransport(default=chat_reply(reasoning="r", priority="low"))
    ctx = context(transport)
    run_module(program, "Support", {"ticket": "a"}, ctx)
    pred = program.predictors["Support.t"]
    pred.signature.instructions = "Triage with care."
    run_module(program, "Support", {"ticket": "a"}, ctx)
    pred.demos.append(Demo(values={"ticket": "printer on fire", "priority": "high"}))
    run_module(program, "Support", {"ticket": "a"}, ctx)
    systems = [r.messages[0]["content"] for r in transport.requests]
    assert "Decide how urgent" in systems[0] and "Triage with care." in systems[1]
    assert len(transport.requests[1].messages) == 2
    assert "printer on fire" in transport.requests[2].messages[1]["content"]


def test_list_inputs_render_as_numbered_lines_for_base_models() -> None:
    outputs = [FieldIR(name="priority", type=PRIORITY)]
    program = triage_program(outputs=outputs)
    sig = program.predictors["Support.t"].signature
    sig.inputs.append(FieldIR(name="notes", type=TypeRef(kind="list", args=[STR])))
    program.modules["Support"].steps[0].args["notes"] = ExprIR(kind="literal",
                                                                value=["first", "second"])
    transport = ScriptedTransport(replies=[" low"])
    run_module(program, "Support", {"ticket": "x"}, context(transport, lm=TEXT_LM))
    assert "Notes:\n[1] first\n[2] second\nPriority:" in transport.requests[0].prompt


def test_enum_value_descriptions_reach_chat_prompts_only() -> None:
    program = triage_program()
    program.enums["Priority"].descs = {"high": "people cannot work"}
    chat = ScriptedTransport(replies=[chat_reply(priority="high")])
    run_module(program, "Support", {"ticket": "x"}, context(chat))
    assert "high (people cannot work)" in chat.requests[0].messages[0]["content"]
    text = ScriptedTransport(replies=[" high"])
    run_module(program, "Support", {"ticket": "x"}, context(text, lm=TEXT_LM))
    assert "Priority — one of: low, medium, high.\n" in text.requests[0].prompt


def test_completion_continuation_drops_a_new_example_the_model_started() -> None:
    outputs = [FieldIR(name="reason", type=STR), FieldIR(name="priority", type=PRIORITY)]
    transport = ScriptedTransport(replies=[" outage\nTicket: another one", " high"])
    ctx = context(transport, lm=TEXT_LM)
    pred = run_module(triage_program(outputs=outputs), "Support", {"ticket": "x"}, ctx)
    assert pred.outputs == {"reason": "outage", "priority": "high"}
    assert transport.requests[1].prompt.endswith(" outage\nPriority:")


def test_a_fields_prefix_is_its_label_for_base_models_and_the_chat_format_keeps_names(
        ) -> None:
    # DSPy's prefix= (deprecated there, with no effect on its chat format): in lmpc it
    # is the label of the base-model layout, where the label is most of the prompt.
    outputs = [FieldIR(name="priority", type=PRIORITY, prefix="Urgency:"),
               FieldIR(name="reason", type=STR, prefix="Because")]
    program = triage_program(outputs=outputs)
    program.predictors["Support.t"].signature.inputs[0].prefix = "Customer message:"
    program.modules["Support"].returns["reason"] = ExprIR(kind="ref", path=["t", "reason"])
    transport = ScriptedTransport(replies=[" high\nBecause: all users are down"])
    pred = run_module(program, "Support", {"ticket": "Site down"},
                      context(transport, lm=TEXT_LM))
    assert pred.outputs == {"priority": "high", "reason": "all users are down"}
    request = transport.requests[0]
    assert request.prompt.endswith("Customer message: Site down\nUrgency:")
    assert "\nCustomer message:" in request.settings["stop"]
    assert '"\\nBecause: "' in request.settings["grammar"]
    chat = ScriptedTransport(replies=[chat_reply(priority="low", reason="typo")])
    run_module(program, "Support", {"ticket": "x"}, context(chat))
    assert "[[ ## priority ## ]]" in chat.requests[0].messages[0]["content"]
