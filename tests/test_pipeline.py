"""The pass driver: composition, split hygiene, provenance, budget stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_pipeline_fixtures import oracle_reply, sentiment_program

from lmpc.compiler import pipeline
from lmpc.compiler.passes.base import Candidate, PassContext, PassResult
from lmpc.compiler.pipeline import PASSES, PipelineError, estimate_plan, run_optimize
from lmpc.ir import BudgetIR, PassIR
from lmpc.runtime.lm import LMClient
from lmpc.runtime.scripted import ScriptedTransport, render_request


def _client(reply: Any = None) -> tuple[LMClient, ScriptedTransport]:
    transport = ScriptedTransport(fn=reply or (lambda r: " " + oracle_reply(render_request(r))))
    return LMClient(transport, sleep=lambda s: None), transport


def _zero_shot_is_wrong(request: Any) -> str:
    """Answers correctly only when the prompt holds demos (a stand-in for few-shot gains)."""
    prompt = render_request(request)
    right = oracle_reply(prompt)
    if prompt.count("The movie was") > 1:
        return " " + right
    return " " + ("negative" if right == "positive" else "positive")


def test_labeled_fewshot_raises_the_score(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": 3})])
    client, _ = _client(_zero_shot_is_wrong)
    result = run_optimize(program, program.optimizes[0], client=client)
    assert result.splits == {"train": 8, "val": 6, "test": 6}
    assert result.scores == {"val": {"before": 0.0, "after": 1.0},
                             "test": {"before": 0.0, "after": 1.0}}
    assert len(result.program.predictors["Classify.p"].demos) == 3
    assert not program.predictors["Classify.p"].demos  # the input IR is untouched
    run = result.passes[0]
    assert run.name == "labeled_fewshot" and run.params == {"k": 3, "sample": True,
                                                         "stratify": True}
    assert run.usage["lm_requests"] == 0  # labeled demos cost nothing
    # before and after: 12 evaluation requests each, counted in the totals
    assert result.usage["lm_requests"] == 24


def test_with_no_val_split_the_build_scores_on_the_trainset(tmp_path: Path) -> None:
    # DSPy evaluates on the trainset when it has no valset; a build with only a train
    # split used to report no score at all.
    from lmpc.ir import SplitIR

    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": 3})],
                                split=SplitIR(train=1.0, seed=2))
    client, _ = _client(_zero_shot_is_wrong)
    result = run_optimize(program, program.optimizes[0], client=client)
    assert result.splits == {"train": 20, "val": 0, "test": 0}
    assert result.scores == {"train": {"before": 0.0, "after": 1.0},
                             "val": {"before": None, "after": None},
                             "test": {"before": None, "after": None}}
    plan = estimate_plan(program, program.optimizes[0], result.splits)
    assert [(s["step"], s["calls"]) for s in (plan[0], plan[-1])] == [
        ("evaluate before (train + test)", 20), ("evaluate after (train + test)", 20)]


def _recording_pass(seen: list[PassContext], add: str) -> Any:
    def fake(program: Any, ctx: PassContext, **params: Any) -> PassResult:
        seen.append(ctx)
        out = program.model_copy(deep=True)
        out.predictors["Classify.p"].signature.instructions += add
        from lmpc.eval.evaluate import evaluate

        score = evaluate(out, ctx.module, ctx.valset, ctx.metric, ctx.run_ctx).score
        return PassResult(out, [Candidate(out, score, f"{add} cand")], {"params": params})

    return fake


def test_passes_compose_and_never_see_the_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[PassContext] = []
    monkeypatch.setitem(PASSES._loaded, "labeled_fewshot", _recording_pass(seen, " A."))
    monkeypatch.setitem(PASSES._loaded, "ensemble", _recording_pass(seen, " B."))
    passes = [PassIR(name="labeled_fewshot"), PassIR(name="ensemble")]
    program = sentiment_program(tmp_path, passes=passes)
    client, transport = _client()
    result = run_optimize(program, program.optimizes[0], client=client, seed=5)
    final = result.program.predictors["Classify.p"].signature.instructions
    assert final == "Classify the review. A. B."  # the second pass started from the first
    assert seen[1].candidates[0].label == " A. cand"  # candidates flow on
    test_texts = {tuple(sorted(e.inputs.items())) for e in _test_rows(program)}
    for ctx in seen:
        assert ctx.seed == 5
        shown = {tuple(sorted(e.inputs.items())) for e in ctx.trainset + ctx.valset}
        assert not shown & test_texts
    # every LM call made inside a pass is attributed to it
    by_pass = client.usage.by("pass")
    assert by_pass["labeled_fewshot"]["calls"] == 6 and by_pass["ensemble"]["calls"] == 6
    assert result.passes[1].candidates[0].score == 1.0
    assert len(transport.requests) == 24 + 12


def _test_rows(program: Any) -> list[Any]:
    from lmpc.eval.data import load_examples, split_examples

    ds = program.datasets["reviews"]
    return split_examples(load_examples(ds, program.base_dir, ["text"]), ds.split)["test"]


def test_budget_stop_keeps_the_best_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def greedy(program: Any, ctx: PassContext, **params: Any) -> PassResult:
        from lmpc.eval.evaluate import evaluate

        for _ in range(10):
            ctx.budget.check()
            evaluate(program, ctx.module, ctx.valset, ctx.metric, ctx.run_ctx)
        raise AssertionError("the budget should have stopped this pass")

    monkeypatch.setitem(PASSES._loaded, "ensemble", greedy)
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": 2}),
                                                  PassIR(name="ensemble")])
    program.optimizes[0].budget = BudgetIR(calls=10)
    client, _ = _client()
    result = run_optimize(program, program.optimizes[0], client=client)
    assert result.budget_stop and "10 LM calls" in result.budget_stop
    assert result.passes[1].stopped
    assert len(result.program.predictors["Classify.p"].demos) == 2  # labeled pass kept
    assert client.usage.by("pass")["ensemble"]["calls"] <= 10
    assert result.scores["test"]["after"] == 1.0


def test_unknown_or_unavailable_pass_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PipelineError, match="unknown optimizer pass 'nope'"):
        PASSES["nope"]
    monkeypatch.setattr(pipeline, "PASSES", pipeline.PassRegistry(("not_written_yet",)))
    with pytest.raises(PipelineError, match="'not_written_yet' is not available"):
        pipeline.PASSES["not_written_yet"]


def test_bad_pass_parameters_are_reported(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"kk": 3})])
    with pytest.raises(PipelineError, match="unknown parameter 'kk'"):
        run_optimize(program, program.optimizes[0], client=_client()[0])


def test_dry_run_plan_calls_no_lm(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot"),
                                                  PassIR(name="bootstrap_fewshot")])
    plan = estimate_plan(program, program.optimizes[0], {"train": 8, "val": 6, "test": 6})
    assert [p["step"] for p in plan][1:3] == ["labeled_fewshot", "bootstrap_fewshot"]
    assert plan[0]["calls"] == 12 and plan[1]["calls"] == 0 and plan[2]["calls"] > 0


def test_real_passes_compose_bootstrap_random_search_then_ensemble(tmp_path: Path) -> None:
    passes = [PassIR(name="bootstrap_fewshot", params={"max_bootstrapped_demos": 2,
                                                       "max_labeled_demos": 2}),
              PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 2,
                                                             "max_bootstrapped_demos": 2}),
              PassIR(name="ensemble", params={"size": 2})]
    program = sentiment_program(tmp_path, passes=passes)
    client, _ = _client(_zero_shot_is_wrong)
    events: list[dict[str, Any]] = []
    result = run_optimize(program, program.optimizes[0], client=client,
                          progress=events.append)
    assert [r.name for r in result.passes] == ["bootstrap_fewshot", "bootstrap_random_search",
                                               "ensemble"]
    assert result.scores["test"] == {"before": 0.0, "after": 1.0}
    assert len(result.passes[1].candidates) >= 3  # -3, -2, -1 and seeded candidates
    assert result.passes[1].usage["lm_requests"] > 0
    assert result.program.ensemble is not None
    assert any(getattr(e, "pass_name", "") == "bootstrap_random_search"
               and getattr(e, "stage", "") == "candidate" for e in events)


def test_warm_rebuild_is_byte_identical_and_makes_no_new_calls(tmp_path: Path) -> None:
    from lmpc.compiler.artifact import write_artifact
    from lmpc.compiler.build import to_artifact
    from lmpc.runtime.cache import SQLiteCache

    passes = [PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 2})]
    program = sentiment_program(tmp_path, passes=passes)
    outputs, new_calls = [], []
    for attempt in range(2):
        transport = ScriptedTransport(fn=_zero_shot_is_wrong)
        client = LMClient(transport, cache=SQLiteCache(tmp_path / "cache.sqlite"))
        result = run_optimize(program, program.optimizes[0], client=client, threads=3)
        out = write_artifact(to_artifact(result, 0), tmp_path / f"out{attempt}.json")
        outputs.append(out.read_bytes())
        new_calls.append(client.usage.snapshot()["calls"])
    assert new_calls[0] > 0 and new_calls[1] == 0
    assert outputs[0] == outputs[1]


def test_budget_tracker_caps_dollars_and_lets_cache_hits_through(tmp_path: Path) -> None:
    from lmpc.compiler.budget import BudgetedClient, BudgetTracker, MeteredClient
    from lmpc.compiler.passes.base import BudgetExceeded
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.lm_types import LMRequest, LMResponse

    transport = ScriptedTransport(fn=lambda r: LMResponse(text="ok", prompt_tokens=3,
                                                          completion_tokens=1, cost_usd=0.01))
    client = LMClient(transport, cache=SQLiteCache(tmp_path / "c.sqlite"))
    tracker = BudgetTracker(BudgetIR(usd=0.015), client)
    metered = MeteredClient(BudgetedClient(client, tracker))
    ask = [LMRequest("m", "text", prompt=p) for p in ("a", "b", "c")]
    metered.complete(ask[0])
    metered.complete(ask[1])
    with pytest.raises(BudgetExceeded, match=r"budget of \$0.015"):
        metered.complete(ask[2])
    with pytest.raises(BudgetExceeded):
        tracker.check()
    assert metered.complete(ask[0]).cached  # a cache hit costs nothing: allowed
    assert metered.snapshot()["lm_requests"] == 3 and metered.snapshot()["prompt_tokens"] == 9
    assert len(transport.requests) == 2


def test_a_build_that_makes_the_program_worse_says_so(tmp_path: Path) -> None:
    from lmpc.compiler.passes.base import BuildWarning

    def demos_hurt(request: Any) -> str:  # right zero-shot, wrong with demos
        wrong = _zero_shot_is_wrong(request).strip()
        return " " + ("negative" if wrong == "positive" else "positive")

    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": 3})])
    events: list[Any] = []
    client, _ = _client(demos_hurt)
    result = run_optimize(program, program.optimizes[0], client=client, progress=events.append)
    assert result.scores["val"] == {"before": 1.0, "after": 0.0}
    warned = [e for e in events if isinstance(e, BuildWarning)]
    assert [w.code for w in warned] == ["W1607"] and "100.0% -> 0.0%" in warned[0].message
    events.clear()
    client, _ = _client(_zero_shot_is_wrong)  # demos help: nothing to warn about
    run_optimize(program, program.optimizes[0], client=client, progress=events.append)
    assert not [e for e in events if isinstance(e, BuildWarning)]
