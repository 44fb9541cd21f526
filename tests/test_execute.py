"""Module graphs: sub-module calls and traces, constraints, retrieve and tool steps,
ensembles, batches, and two programs with different LMs in parallel."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from runtime_programs import (  # noqa: E402
    CHAT_LM,
    STR,
    TEXT_LM,
    add_tool,
    chat_reply,
    context,
    ref,
    triage_program,
)

from lmpc.ir import (  # noqa: E402
    ConstraintIR,
    EnsembleIR,
    ExprIR,
    FieldIR,
    ModuleIR,
    PredictorIR,
    RetrieveIR,
    SignatureIR,
    StepIR,
)
from lmpc.runtime.errors import ConstraintFailed, RuntimeFailure  # noqa: E402
from lmpc.runtime.execute import (  # noqa: E402
    Prediction,
    default_task_lm,
    run_batch,
    run_module,
)
from lmpc.runtime.lm_types import LMError, LMRequest  # noqa: E402
from lmpc.runtime.retrieve import BM25Index, retrieve  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402


def with_summary(program):
    """Add ``Outer(ticket) -> (priority, summary)`` that calls Support, then summarizes."""
    sig = SignatureIR(name="Summarize", inputs=[FieldIR(name="ticket", type=STR),
                                                FieldIR(name="priority", type=STR)],
                      outputs=[FieldIR(name="summary", type=STR)])
    program.predictors["Outer.s"] = PredictorIR(id="Outer.s", signature=sig)
    program.modules["Outer"] = ModuleIR(
        name="Outer", inputs=[FieldIR(name="ticket", type=STR)],
        steps=[StepIR(name="c", kind="call", module="Support", args={"ticket": ref("ticket")}),
               StepIR(name="s", kind="predictor", predictor="Outer.s",
                      args={"ticket": ref("ticket"), "priority": ref("c", "priority")})],
        returns={"priority": ref("c", "priority"), "summary": ref("s", "summary")})
    return program


def test_sub_module_calls_join_the_trace() -> None:
    transport = ScriptedTransport(rules=[(r"`summary`", chat_reply(summary="Site is down.")),
                                         (r"`priority`", chat_reply(priority="high"))])
    pred = run_module(with_summary(triage_program()), "Outer", {"ticket": "down"},
                      context(transport))
    assert pred.outputs == {"priority": "high", "summary": "Site is down."}
    assert [s.predictor for s in pred.trace] == ["Support.t", "Outer.s"]
    assert pred.trace[1].inputs == {"ticket": "down", "priority": "high"}
    assert all(len(s.call_ids) == 1 for s in pred.trace)


def short(max_retries: int = 2, kind: str = "assert") -> ConstraintIR:
    expr = {"op": "!=", "args": [{"ref": ["t", "priority"]}, "low"]}
    return ConstraintIR(kind=kind, expr=expr, message="a low priority is not allowed here",
                        max_retries=max_retries)


def test_assert_retries_with_feedback_then_succeeds() -> None:
    transport = ScriptedTransport(replies=[chat_reply(priority="low"),
                                           chat_reply(priority="medium")])
    ctx = context(transport)
    pred = run_module(triage_program(constraints=[short()]), "Support", {"ticket": "x"}, ctx)
    assert pred.outputs == {"priority": "medium"}
    retry = transport.requests[1].messages[-1]["content"]
    assert "[[ ## feedback ## ]]\na low priority is not allowed here" in retry
    assert "[[ ## previous_attempt ## ]]\npriority: low" in retry
    assert pred.trace[0].inputs == {"ticket": "x"}  # hints never reach demos
    assert len(pred.trace[0].call_ids) == 2 and ctx.stats.get("constraint_retries") == 1


def test_assert_fails_after_its_retries() -> None:
    transport = ScriptedTransport(default=chat_reply(priority="low"))
    with pytest.raises(ConstraintFailed, match="Support.t: assert failed: a low priority"):
        run_module(triage_program(constraints=[short(max_retries=1)]), "Support",
                   {"ticket": "x"}, context(transport))
    assert len(transport.requests) == 2


def test_suggest_continues_after_its_retries() -> None:
    transport = ScriptedTransport(default=chat_reply(priority="low"))
    ctx = context(transport)
    program = triage_program(constraints=[short(max_retries=1, kind="suggest")])
    assert run_module(program, "Support", {"ticket": "x"}, ctx).outputs == {"priority": "low"}
    assert ctx.stats.get("suggest_failures") == 1


def priority_is(op: str, value: str, kind: str, max_retries: int) -> ConstraintIR:
    expr = {"op": op, "args": [{"ref": ["t", "priority"]}, value]}
    return ConstraintIR(kind=kind, expr=expr, message=f"{kind}: priority {op} {value}",
                        max_retries=max_retries)


def test_a_failing_suggest_before_an_assert_does_not_switch_the_assert_off() -> None:
    # The suggestion runs out of retries first; the assert after it must still fail the
    # example (it used to be skipped: the constraint loop stopped at the suggestion).
    transport = ScriptedTransport(default=chat_reply(priority="low"))
    ctx = context(transport)
    program = triage_program(constraints=[priority_is("==", "high", "suggest", 1),
                                          priority_is("matches", "^(medium|high)$",
                                                      "assert", 1)])
    with pytest.raises(ConstraintFailed, match=r"assert failed: assert: priority matches"):
        run_module(program, "Support", {"ticket": "x"}, ctx)
    assert ctx.stats.get("suggest_failures") == 1
    assert len(transport.requests) == 2


def test_an_assert_after_a_given_up_suggest_still_gets_its_own_retries() -> None:
    transport = ScriptedTransport(replies=[chat_reply(priority="low"),
                                           chat_reply(priority="low"),
                                           chat_reply(priority="medium")])
    ctx = context(transport)
    program = triage_program(constraints=[priority_is("==", "high", "suggest", 1),
                                          priority_is("!=", "low", "assert", 2)])
    assert run_module(program, "Support", {"ticket": "x"}, ctx).outputs == {
        "priority": "medium"}
    feedback = [r.messages[-1]["content"] for r in transport.requests[1:]]
    assert "suggest: priority == high" in feedback[0]
    assert "assert: priority != low" in feedback[1]  # the assert's own message fed back
    assert ctx.stats.get("suggest_failures") == 1 and ctx.stats.get("constraint_retries") == 2


def test_a_module_input_left_out_takes_its_declared_default(tmp_path: Path) -> None:
    from lmpc.compiler.check.program import check_text

    program, diags, _ = check_text(
        'signature S = "q, k: int -> a"\n'
        "module Inner(q: str, k: int = 3) -> (a: str) {\n  s = predict S(q = q, k = k)\n"
        "  return (a = s.a)\n}\n"
        "module Outer(q: str) -> (a: str) {\n  i = Inner(q = q)\n  return (a = i.a)\n}\n",
        str(tmp_path / "m.lmp"))
    assert diags == [] and program is not None
    transport = ScriptedTransport(default=chat_reply(a="ok"))
    pred = run_module(program, "Outer", {"q": "x"}, context(transport))
    assert pred.outputs == {"a": "ok"} and pred.trace[0].inputs == {"q": "x", "k": 3}


def test_retrieve_step_bm25_over_a_local_corpus(tmp_path: Path) -> None:
    (tmp_path / "kb.txt").write_text(
        "Reset a password from the login page.\n\n"
        "Invoices are sent monthly by email.\n\nOutages are posted on the status page.\n")
    program = triage_program()
    module = program.modules["Support"]
    module.steps.insert(0, StepIR(name="r", kind="retrieve",
                                  retrieve=RetrieveIR(corpus="kb.txt", k=2),
                                  args={"query": ref("ticket")}))
    module.returns["passages"] = ref("r", "passages")
    transport = ScriptedTransport(default=chat_reply(priority="low"))
    pred = run_module(program, "Support", {"ticket": "reset password page"},
                      context(transport, base_dir=tmp_path))
    assert pred.outputs["passages"][0] == "Reset a password from the login page."
    assert len(pred.outputs["passages"]) == 2


def test_bm25_jsonl_corpus_and_missing_file(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "apples are red"}\n{"text": "bananas are yellow"}\n')
    assert retrieve("yellow fruit", corpus, k=1) == ["bananas are yellow"]
    assert BM25Index([]).search("x") == []
    with pytest.raises(RuntimeFailure, match="corpus file not found"):
        retrieve("x", tmp_path / "nope.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"title": 1}\n')
    with pytest.raises(RuntimeFailure, match=r"bad.jsonl:2: a corpus row needs a \"text\""):
        retrieve("x", bad)


def test_tool_step_calls_the_tool_directly(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    program = triage_program()
    add_tool(program, "shout", "tools:shout", ["text"])
    program.modules["Support"].steps.append(
        StepIR(name="u", kind="tool", tool="shout", args={"text": ref("t", "priority")}))
    program.modules["Support"].returns["loud"] = ref("u", "result")
    transport = ScriptedTransport(default=chat_reply(priority="high"))
    ctx = context(transport, base_dir=tmp_path, allow_tools=True)
    assert run_module(program, "Support", {"ticket": "x"}, ctx).outputs["loud"] == "HIGH"


def test_ensemble_majority_vote_ties_broken_by_member_order() -> None:
    program = triage_program()
    base = program.predictors["Support.t"]
    members = []
    for word in ("alpha", "beta", "gamma"):
        sig = base.signature.model_copy(update={"instructions": f"Variant {word}."})
        members.append({"Support.t": base.model_copy(update={"signature": sig})})
    program.ensemble = EnsembleIR(members=members)
    replies = {"alpha": "low", "beta": "high", "gamma": "high"}

    def fn(request: LMRequest) -> str:
        word = next(w for w in replies if f"Variant {w}." in request.messages[0]["content"])
        return chat_reply(priority=replies[word])

    pred = run_module(program, "Support", {"ticket": "x"}, context(ScriptedTransport(fn=fn)))
    assert pred.outputs == {"priority": "high"} and len(pred.trace) == 3
    replies["gamma"] = "medium"  # one vote each: the first member wins
    pred = run_module(program, "Support", {"ticket": "y"}, context(ScriptedTransport(fn=fn)))
    assert pred.outputs == {"priority": "low"}


def test_run_batch_keeps_order_and_returns_failures() -> None:
    def fn(request: LMRequest) -> str:
        text = request.messages[-1]["content"]
        if "boom" in text:
            raise LMError("model exploded")
        return chat_reply(priority="high" if "down" in text else "low")

    rows = [{"ticket": f"row {i} {'down' if i % 2 else 'fine'}"} for i in range(10)]
    rows[3] = {"ticket": "boom"}
    rows[6] = {"wrong": "field"}
    results = run_batch(triage_program(), "Support", rows, context(ScriptedTransport(fn=fn)),
                        threads=4)
    assert len(results) == 10
    assert isinstance(results[3], LMError) and "exploded" in str(results[3])
    assert isinstance(results[6], RuntimeFailure) and "needs input 'ticket'" in str(results[6])
    for i in (0, 1, 2, 4, 5, 7, 8, 9):
        assert isinstance(results[i], Prediction)
        assert results[i].outputs["priority"] == ("high" if i % 2 else "low")


def test_two_programs_with_different_lms_in_parallel_threads() -> None:
    def fn(request: LMRequest) -> str:
        if request.model == TEXT_LM.model:
            return " low"
        return chat_reply(priority="high")

    transport = ScriptedTransport(fn=fn, delay=0.002)
    chat_ctx = context(transport, lm=CHAT_LM)
    text_ctx = context(transport, lm=TEXT_LM)
    results: dict[str, list] = {}

    def work(name, ctx):
        rows = [{"ticket": f"{name} {i}"} for i in range(12)]
        results[name] = run_batch(triage_program(), "Support", rows, ctx, threads=3)

    threads = [threading.Thread(target=work, args=("chat", chat_ctx)),
               threading.Thread(target=work, args=("text", text_ctx))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.outputs == {"priority": "high"} for p in results["chat"])
    assert all(p.outputs == {"priority": "low"} for p in results["text"])
    modes = {(r.model, r.mode) for r in transport.requests}
    assert modes == {(CHAT_LM.model, "chat"), (TEXT_LM.model, "text")}


def test_inputs_are_coerced_and_refs_checked() -> None:
    program = triage_program()
    program.modules["Support"].inputs.append(FieldIR(name="seats", type=default_int()))
    program.modules["Support"].returns["seats"] = ref("seats")
    program.modules["Support"].returns["const"] = ExprIR(kind="literal", value=7)
    transport = ScriptedTransport(default=chat_reply(priority="low"))
    out = run_module(program, "Support", {"ticket": "x", "seats": "12"}, context(transport))
    assert out.outputs == {"priority": "low", "seats": 12, "const": 7}
    with pytest.raises(RuntimeFailure, match="input field 'seats': expected an integer"):
        run_module(program, "Support", {"ticket": "x", "seats": "many"}, context(transport))
    program.modules["Support"].returns["bad"] = ref("t", "nothing")
    with pytest.raises(RuntimeFailure, match="'t.nothing' has no value"):
        run_module(program, "Support", {"ticket": "x", "seats": 1}, context(transport))
    with pytest.raises(RuntimeFailure, match="no module named 'Nope'"):
        run_module(program, "Nope", {}, context(transport))


def default_int():
    from lmpc.ir import TypeRef

    return TypeRef(kind="int")


def test_default_task_lm() -> None:
    program = triage_program()
    assert default_task_lm(program).name == "chat"  # the first declared
    assert default_task_lm(program, "local") is program.lms["local"]
    assert default_task_lm(program, "ollama/qwen").model == "ollama/qwen"
    program.lms.clear()
    assert default_task_lm(program).model == "local/gemma-3-270m"


def test_corpus_is_indexed_once_across_threads_and_reindexed_on_change(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lmpc.runtime.retrieve import CorpusCache

    corpus = tmp_path / "kb.txt"
    corpus.write_text("alpha beta\n\ngamma delta\n")
    cache = CorpusCache()
    with ThreadPoolExecutor(8) as pool:
        indexes = list(pool.map(lambda _: cache.index(corpus), range(32)))
    assert all(ix is indexes[0] for ix in indexes)
    corpus.write_text("alpha beta\n\ngamma delta\n\nepsilon zeta eta\n")
    assert cache.index(corpus).search("epsilon") == ["epsilon zeta eta"]
