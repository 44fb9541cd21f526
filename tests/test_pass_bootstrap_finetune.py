"""bootstrap_finetune and better_together with the scripted model: training records in the
exact prompt each predictor sends, grouping, the hosted path end to end against a
loopback fake of the fine-tuning API, strategies and the best pick, dry-run estimates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import (  # noqa: E402
    LM,
    World,
    classify_program,
    examples,
    pass_context,
    pipe_program,
    truth,
)

from lmpc.compiler.finetune.records import (  # noqa: E402
    RecordError,
    group_records,
    record_for,
    records_for,
)
from lmpc.compiler.passes._demos import PassError  # noqa: E402
from lmpc.compiler.passes._estimate import Workload  # noqa: E402
from lmpc.compiler.passes.better_together import (  # noqa: E402
    best_step,
    better_together,
    parse_strategy,
)
from lmpc.compiler.passes.better_together import estimate as bt_estimate  # noqa: E402
from lmpc.compiler.passes.bootstrap_finetune import bootstrap_finetune, estimate  # noqa: E402
from lmpc.ir import LMIR, Demo, ProgramIR  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from tests.fake_finetune_server import TUNED, fake_finetune  # noqa: E402

TEXTS = ["good cat", "bad dog", "good tricky film", "bad rain", "good sun", "bad food",
         "good book", "bad traffic"]
TEXT_LM = LMIR(name="t", model="scripted/text", model_type="text")


def _captured(world: World, program: ProgramIR, module: str, inputs: dict) -> list:
    before = len(world.requests)
    run_module(program, module, inputs, _ctx(world, program))
    return world.requests[before:]


def _ctx(world: World, program: ProgramIR):
    from world import run_context

    ctx = run_context(world)
    return ctx.derive(program_lms={**ctx.program_lms, **program.lms})


def test_a_chat_record_is_the_exact_request_the_predictor_sends_plus_the_answer() -> None:
    world = World()
    prog = classify_program()
    rec = records_for(prog, "Classify", [("Classify.c", {"text": "good cat", "label": "positive"})],
                      {"Classify.c": LM})[0]
    sent = _captured(world, prog, "Classify", {"text": "good cat"})[0]
    assert rec.mode == "chat"
    assert list(rec.messages[:-1]) == [dict(m) for m in sent.messages]
    assert rec.messages[-1] == {"role": "assistant", "content":
                                "[[ ## label ## ]]\npositive\n\n[[ ## completed ## ]]"}
    assert rec.to_json() == {"messages": [dict(m) for m in rec.messages]}


def test_a_completion_record_is_the_exact_prompt_and_the_text_after_it() -> None:
    prog = classify_program()
    prog.lms["t"] = TEXT_LM
    prog.predictors["Classify.c"].lm = "t"
    from world import run_context

    from lmpc.runtime.lm import LMClient
    from lmpc.runtime.scripted import ScriptedTransport

    transport = ScriptedTransport(default=" positive")
    ctx = run_context(World()).derive(client=LMClient(transport, sleep=lambda s: None),
                                      program_lms={"m": LM, "t": TEXT_LM})
    out = run_module(prog, "Classify", {"text": "good cat"}, ctx)
    rec = record_for(prog, prog.predictors["Classify.c"], {"text": "good cat",
                                                           "label": "positive"}, TEXT_LM)
    assert rec.mode == "text" and rec.prompt == transport.requests[0].prompt
    assert rec.completion == " positive\n\n"  # the value, then the stop that ends it
    assert out.outputs["label"] == "positive"
    assert rec.to_json() == {"prompt": rec.prompt, "completion": " positive\n\n"}


def test_chain_of_thought_records_carry_the_reasoning_and_react_its_extract_step() -> None:
    prog = pipe_program()
    values = {"text": "good cat", "reasoning": "it is good", "label": "positive"}
    rec = record_for(prog, prog.predictors["Pipe.c"], values, LM)
    world = World()
    sent = _captured(world, prog, "Pipe", {"text": "good cat"})[0]
    assert list(rec.messages[:-1]) == [dict(m) for m in sent.messages]
    assert "[[ ## reasoning ## ]]\nit is good" in rec.messages[-1]["content"]
    react = prog.predictors["Pipe.c"].model_copy(update={"kind": "react", "options": {
        "tools": [], "max_iters": 2}})
    rec = record_for(prog, react, {**values, "trajectory": "[1] thought: done"}, LM)
    assert "[[ ## trajectory ## ]]\n[1] thought: done" in rec.messages[-2]["content"]
    with pytest.raises(RecordError, match="lacks trajectory"):
        record_for(prog, react, values, LM)


def test_best_of_n_and_refine_records_use_the_declared_signature() -> None:
    prog = classify_program()
    for kind in ("best_of_n", "refine"):
        pred = prog.predictors["Classify.c"].model_copy(update={"kind": kind})
        rec = record_for(prog, pred, {"text": "x", "label": "negative"}, TEXT_LM)
        assert rec.completion == " negative\n\n" and "Text: x" in rec.prompt


def test_multitask_trains_one_set_for_every_predictor_else_one_each() -> None:
    prog = pipe_program()
    steps = [("Pipe.c", {"text": t, "label": truth(t)}) for t in TEXTS[:3]]
    steps += [("Pipe.s", {"text": t, "summary": t.split()[0]}) for t in TEXTS[:3]]
    recs = records_for(prog, "Pipe", steps, {"Pipe.c": LM, "Pipe.s": LM})
    assert {k: len(v) for k, v in group_records(recs, True).items()} == {"*": 6}
    assert {k: len(v) for k, v in group_records(recs, False).items()} == {"Pipe.c": 3,
                                                                          "Pipe.s": 3}


def _hosted(url: str) -> LMIR:
    return LMIR(name="m", model="openai/base-model", model_type="chat",
                settings={"api_base": url, "api_key": {"env": "FAKE_FT_KEY"}})


def _hosted_world(monkeypatch: pytest.MonkeyPatch, url: str, program: ProgramIR,
                  train: list, **kw):
    monkeypatch.setenv("FAKE_FT_KEY", "sk-fake")
    world = World()
    base = _hosted(url)
    program.lms["m"] = base
    ctx = pass_context(world, program, next(iter(program.modules)), train, **kw)
    from lmpc.runtime.trust import Trust

    ctx.run_ctx = ctx.run_ctx.derive(task_lm=base, program_lms={"m": base},
                                     trust=Trust(allow_endpoints=(url,)))
    ctx.teacher_ctx = ctx.prompt_ctx = ctx.reflection_ctx = ctx.run_ctx
    return world, ctx


def test_the_hosted_path_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    prog = classify_program()
    prog.predictors["Classify.c"].demos = [Demo(values={"text": "good x", "label": "positive"})]
    with fake_finetune(["running", "succeeded"]) as fake:
        world, ctx = _hosted_world(monkeypatch, fake.url, prog, examples(TEXTS))
        out = bootstrap_finetune(prog, ctx, epochs=2, batch_size=1, seed=3, timeout=30.0)
    pred = out.program.predictors["Classify.c"]
    tuned = out.program.lms[pred.lm]
    assert pred.lm == "m_tuned" and pred.demos == []  # zero-shot on the tuned model
    assert tuned.model == f"openai/{TUNED}" and tuned.tuned.method == "hosted"
    assert tuned.tuned.base == "openai/base-model" and tuned.tuned.job == "ftjob-1"
    assert tuned.settings == _hosted(fake.url).settings  # same endpoint, secret as a ref
    lines = [json.loads(x) for x in fake.uploads[0].decode().splitlines()]
    # the teacher (the program as it is: one demo) gets "tricky" wrong: not a record
    assert len(lines) == len(TEXTS) - 1 == out.report["records"]
    assert all("tricky" not in json.dumps(x) for x in lines)
    assert all(len(x["messages"]) == 3 for x in lines)  # system, user, answer: no demos
    assert fake.jobs[0]["hyperparameters"] == {"n_epochs": 2, "batch_size": 1}
    assert len(world.requests) == len(TEXTS) == estimate(
        Workload(program=prog, module="Classify", trainset=examples(TEXTS), n_val=0)).calls
    assert prog.predictors["Classify.c"].lm is None  # the input IR is untouched


def test_no_accepted_trace_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    prog = classify_program()
    with fake_finetune(["succeeded"]) as fake:
        _, ctx = _hosted_world(monkeypatch, fake.url, prog, examples(["good tricky one"]))
        with pytest.raises(PassError, match="succeeded on none"):
            bootstrap_finetune(prog, ctx)
        assert fake.jobs == []


def test_strategy_strings_and_the_best_pick() -> None:
    assert parse_strategy("p -> w -> p") == ["p", "w", "p"]
    assert parse_strategy(" w->p ") == ["w", "p"]
    for bad in ("", "p ->", "p -> q", "pw"):
        with pytest.raises(PassError):
            parse_strategy(bad)
    assert best_step([0.5, 0.9, 0.7]) == 1
    assert best_step([0.5, 0.5]) == 0  # ties go to the earlier step


def test_better_together_scores_every_step_and_returns_the_best(
        monkeypatch: pytest.MonkeyPatch) -> None:
    prog = classify_program()
    val = examples(["good tricky a", "bad b", "good c", "bad tricky d"])
    with fake_finetune(["succeeded"]) as fake:
        world, ctx = _hosted_world(monkeypatch, fake.url, prog, examples(TEXTS), val=val)
        # the tuned model is never fooled by "tricky" texts; the base model is
        world.answer = lambda request, text, name: truth(text) if name == "label" and \
            request.model.endswith(TUNED) else None
        out = better_together(prog, ctx, strategy="p -> w -> p",
                              prompt_optimizer="labeled_fewshot(k = 2)",
                              weight_optimizer="bootstrap_finetune(epochs = 1)")
    steps = out.report["steps"]
    assert [s["kind"] for s in steps] == ["start", "p", "w", "p"]
    assert [s["score"] for s in steps] == [0.5, 0.5, 1.0, 1.0]
    assert out.report["best_step"] == 2 and out.report["scored_on"] == "val"
    assert out.program.predictors["Classify.c"].lm == "m_tuned"
    assert out.program.predictors["Classify.c"].demos == []
    assert steps[2]["lms"]["m_tuned"]["model"] == f"openai/{TUNED}"
    assert [c.score for c in out.candidates] == [0.5, 0.5, 1.0, 1.0]
    assert len(steps[3]["predictors"]["Classify.c"]["demos"]) == 2


def test_better_together_holds_out_a_train_slice_without_a_val_split() -> None:
    world = World()
    prog = classify_program()
    ctx = pass_context(world, prog, "Classify", examples(TEXTS * 2))
    out = better_together(prog, ctx, strategy="p", prompt_optimizer="labeled_fewshot(k = 2)",
                          valset_ratio=0.25)
    assert out.report["scored_on"] == "train slice"
    assert out.report["scored_rows"] == 4 and out.report["trained_rows"] == 12
    shown = {d.values["text"] for d in out.program.predictors["Classify.c"].demos} \
        if out.report["best_step"] == 1 else set()
    assert len(world.requests) == 2 * 4  # step 0 and step 1, each on the held-out rows
    assert shown <= set(TEXTS)


def test_better_together_estimate_adds_its_steps_and_scorings() -> None:
    work = Workload(program=classify_program(), module="Classify", trainset=examples(TEXTS),
                    n_val=4)
    est = bt_estimate(work, strategy="p -> w", prompt_optimizer="bootstrap_fewshot",
                      weight_optimizer="bootstrap_finetune")
    assert est.calls == 4 * 3 + 4 + len(TEXTS)  # 3 scorings of 4 rows, the two steps
    with pytest.raises(PassError, match="unknown optimizer"):
        bt_estimate(work, prompt_optimizer="nope")
