"""mipro_v2: presets, proposer grounding, search cadence, reproducibility, budget, resume.

Everything runs through the real chat adapter with a scripted model (``world.py``) that
answers by prompt: an instruction containing ``level N`` makes the classifier right on
the texts whose number ``i`` has ``i % 4 < N`` (level 4: always right; no level: 1),
and the prompt model writes ``level`` instructions that depend on the rollout index.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import LM, World, classify_program, examples, pass_context, pipe_program  # noqa: E402

from lmpc.compiler.passes._demos import PassError  # noqa: E402
from lmpc.compiler.passes._estimate import workload_of  # noqa: E402
from lmpc.compiler.passes.base import BudgetExceeded  # noqa: E402
from lmpc.compiler.passes.mipro_v2 import (  # noqa: E402
    estimate,
    mipro_v2,
    num_trials_for,
    resolve_settings,
)
from lmpc.runtime.lm_types import LMRequest  # noqa: E402

_LEVEL = re.compile(r"level (\d)")


def answer(request: LMRequest, text: str, name: str) -> str | None:
    """The scripted world's answers for the classifier and for the prompt model."""
    if name == "proposed_instruction":
        return f"Label it well, level {request.rollout % 5} (draft {request.rollout})"
    if name in ("notes", "summary", "description", "role"):
        return f"a {name} of the task"
    if name == "label" and text:
        level = _LEVEL.search(request.messages[0]["content"])
        n = int(text.split()[-1])
        right = "positive" if "good" in text else "negative"
        wrong = "negative" if right == "positive" else "positive"
        return right if n % 4 < (int(level.group(1)) if level else 1) else wrong
    return None


def texts(n: int) -> list[str]:
    return [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(n)]


def setup(n_train: int = 16, n_val: int = 24, program: Any = None, cache: Path | None = None,
          **kw: Any) -> tuple[World, Any, Any]:
    world = World(answer=answer)
    prog = program or classify_program()
    rows = texts(n_train + n_val)
    module = next(iter(prog.modules))
    summary = module == "Pipe"
    ctx = pass_context(world, prog, module, examples(rows[:n_train], summary),
                       examples(rows[n_train:], summary), **kw)
    if cache is not None:
        from lmpc.runtime.cache import SQLiteCache
        from lmpc.runtime.context import RunContext
        from lmpc.runtime.lm import LMClient

        client = LMClient(world.transport, cache=SQLiteCache(cache), sleep=lambda s: None)
        ctx.run_ctx = ctx.teacher_ctx = ctx.prompt_ctx = RunContext(
            client=client, program_lms={"m": LM}, task_lm=LM)
    return world, prog, ctx


SMALL = {"auto": None, "num_candidates": 4, "num_trials": 6, "minibatch_size": 8,
         "minibatch_full_eval_steps": 3, "storage": "memory"}


def proposals(world: World) -> list[LMRequest]:
    return [r for r in world.requests if "`proposed_instruction`" in r.messages[0]["content"]]


def headers(request: LMRequest) -> set[str]:
    return set(re.findall(r"\[\[ ## (\w+) ## \]\]", request.messages[-1]["content"]))


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("auto, predictors, fewshot, n, trials, cap", [
    ("light", 1, True, 6, 10, 100),
    ("light", 1, False, 6, 9, 100),
    ("medium", 1, True, 12, 18, 300),
    ("heavy", 1, True, 18, 27, 1000),
    ("light", 3, True, 6, 31, 100),
    ("medium", 2, False, 12, 18, 300),
    ("heavy", 2, True, 18, 33, 1000),
])
def test_presets_and_trial_formula(auto: str, predictors: int, fewshot: bool, n: int,
                                   trials: int, cap: int) -> None:
    demos = 4 if fewshot else 0
    s = resolve_settings(predictors, auto, None, None, demos, demos)
    assert (s.num_candidates, s.num_trials, s.val_cap, s.fewshot) == (n, trials, cap, fewshot)
    assert num_trials_for(predictors, n, fewshot) == trials


def test_manual_mode_needs_both_numbers_and_auto_excludes_them() -> None:
    assert resolve_settings(2, None, 5, 7, 4, 4).num_trials == 7
    with pytest.raises(PassError, match="needs num_candidates and num_trials"):
        resolve_settings(1, None, 5, None, 4, 4)
    with pytest.raises(PassError, match="auto = none"):
        resolve_settings(1, "light", 5, None, 4, 4)


def test_light_run_makes_the_preset_number_of_trials_on_a_capped_valset() -> None:
    world, prog, ctx = setup(n_train=40, n_val=0)  # no valset: the last 80% of train
    result = mipro_v2(prog, ctx, storage="memory", minibatch_size=10)
    report = result.report
    assert report["settings"]["train"] == 8 and report["settings"]["val"] == 32
    assert len(report["trials"]) == 10 + 1  # the baseline is trial 0
    assert len(report["instructions"]["Classify.c"]) == 6
    assert report["demo_sets"]["Classify.c"][0] == 0  # slot 0: the program's own (none)
    assert len(report["demo_sets"]["Classify.c"]) == 6
    assert report["best"]["score"] >= report["baseline_score"]


# ---------------------------------------------------------------- proposer grounding


@pytest.mark.parametrize("switch, fields", [
    (None, set()),
    ("data_aware", {"dataset_description"}),
    ("program_aware", {"program", "program_description", "step_role"}),
    ("fewshot_aware", {"demos"}),
    ("tip_aware", {"tip"}),
])
def test_each_aware_switch_removes_its_proposer_input(switch: str | None,
                                                      fields: set[str]) -> None:
    world, prog, ctx = setup()
    flags = {switch: False} if switch else {}
    mipro_v2(prog, ctx, **SMALL, **flags)
    sent = proposals(world)
    assert len(sent) == 3  # num_candidates - 1: slot 0 keeps the original instruction
    every = {"task", "current_instruction", "dataset_description", "program",
             "program_description", "step_role", "demos", "previous_instructions", "tip"}
    for request in sent:
        assert headers(request) & every == every - fields
    observed = [r for r in world.requests if "`notes`" in r.messages[0]["content"]]
    described = [r for r in world.requests if "`description`" in r.messages[0]["content"]]
    assert bool(observed) == (switch != "data_aware")
    assert bool(described) == (switch != "program_aware")


def test_proposer_sees_data_demos_previous_instructions_and_rollouts() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **SMALL)
    sent = proposals(world)
    assert [r.rollout for r in sent] == [1, 2, 3]
    assert all(r.settings.get("temperature") == 1.0 for r in sent)
    last = sent[-1].messages[-1]["content"]
    assert "a summary of the task" in last  # the condensed dataset summary
    assert "Demo 1:" in last and "day" in last  # a demo set's rows
    assert "draft 1" in last and "draft 2" in last  # instructions proposed before
    tips = result.report["proposer"]["tips"]["Classify.c"]
    assert len(tips) == 3
    instructions = result.report["instructions"]["Classify.c"]
    assert instructions[0] == "Classify the sentiment."
    assert instructions[1:] == [f"Label it well, level {i} (draft {i})" for i in (1, 2, 3)]


def test_zero_shot_mode_searches_instructions_only() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 4}, max_bootstrapped_demos=0,
                      max_labeled_demos=0)
    assert all(set(t["params"]["Classify.c"]) == {"instruction"}
               for t in result.report["trials"])
    assert result.program.predictors["Classify.c"].demos == []
    assert all("demos" not in headers(r) for r in proposals(world))


# ---------------------------------------------------------------- the search


def test_unchanged_program_is_fully_evaluated_first_as_trial_zero() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **SMALL)
    first = result.report["trials"][0]
    assert first["number"] == 0 and first["baseline"]
    assert first["params"] == {"Classify.c": {"instruction": 0, "demos": 0}}
    # the unchanged instruction gets the texts with i % 4 == 0 right: 6 of 24
    assert first["full_score"] == result.report["baseline_score"] == pytest.approx(0.25)
    assert result.report["full_evals"][0]["params"] == first["params"]


def test_minibatch_trials_and_periodic_full_evaluations() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 7})
    trials = result.report["trials"][1:]
    assert len(trials) == 7
    assert all(t["minibatch_size"] == 8 and t["minibatch_score"] is not None for t in trials)
    # the baseline, then after trials 3 and 6, and once at the end (trial 7)
    assert len(result.report["full_evals"]) == 4
    scores = [f["score"] for f in result.report["full_evals"]]
    assert result.report["best"]["score"] == max(scores)
    # the first periodic evaluation went to the best mean minibatch among trials 1-3
    first_three = trials[:3]
    best_mb = max(first_three, key=lambda t: t["minibatch_score"])
    assert result.report["full_evals"][1]["params"] == best_mb["params"]
    assert result.candidates[0].score == max(scores)


def test_without_minibatches_every_trial_is_a_full_evaluation() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **{**SMALL, "minibatch": False})
    assert all(t["full_score"] is not None for t in result.report["trials"])
    assert all(t["minibatch_score"] is None for t in result.report["trials"])


def test_best_full_evaluation_wins_and_the_input_is_untouched() -> None:
    world, prog, ctx = setup()
    result = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 9})
    best = result.report["best"]["params"]["Classify.c"]
    pred = result.program.predictors["Classify.c"]
    assert pred.signature.instructions == result.report["instructions"]["Classify.c"][
        best["instruction"]]
    assert result.report["best"]["score"] > result.report["baseline_score"]
    assert prog.predictors["Classify.c"].signature.instructions == "Classify the sentiment."


def test_same_seed_same_trials_and_same_program() -> None:
    runs = []
    for _ in range(2):
        world, prog, ctx = setup()
        result = mipro_v2(prog, ctx, **SMALL)
        runs.append((result.report["trials"], result.program.model_dump_json()))
    assert runs[0] == runs[1]
    world, prog, ctx = setup()
    other = mipro_v2(prog, ctx, **{**SMALL, "seed": 10})
    assert other.report["trials"] != runs[0][0]


def test_two_predictors_each_get_instruction_and_demo_choices() -> None:
    world, prog, ctx = setup(program=pipe_program())
    result = mipro_v2(prog, ctx, **SMALL)
    params = result.report["trials"][1]["params"]
    assert set(params) == {"Pipe.c", "Pipe.s"}
    assert all(set(v) == {"instruction", "demos"} for v in params.values())


# ---------------------------------------------------------------- budget, estimate, resume


class FakeBudget:
    """Allows ``allowed`` checks, then raises on every further one."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.checks = 0

    def check(self, calls: int = 1) -> None:
        self.checks += 1
        if self.checks > self.allowed:
            raise BudgetExceeded(f"fake budget of {self.allowed} checks")


def test_budget_stops_at_the_cap_with_the_best_so_far() -> None:
    # Count the checks an unlimited run makes, then allow all but the last few trials.
    world, prog, ctx = setup(budget=FakeBudget(10_000))
    full = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 6})
    total = ctx.budget.checks
    world, prog, ctx = setup(budget=FakeBudget(total - 3))
    cut = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 6})
    assert cut.report["stopped"] == "budget"
    assert ctx.budget.checks == total - 3 + 1  # stopped at the first refused check
    assert len(cut.report["trials"]) < len(full.report["trials"])
    assert cut.report["best"]["score"] >= cut.report["baseline_score"]
    assert cut.program == cut.candidates[0].program


def test_budget_before_any_evaluation_returns_the_input() -> None:
    world, prog, ctx = setup(budget=FakeBudget(0))
    result = mipro_v2(prog, ctx, **SMALL)
    assert result.report["stopped"] == "budget"
    assert result.program == prog and not world.requests


def test_real_budget_tracker_caps_new_calls(tmp_path: Path) -> None:
    from lmpc.compiler.budget import BudgetedClient, BudgetTracker
    from lmpc.ir import BudgetIR

    world, prog, ctx = setup(cache=tmp_path / "c.sqlite")
    client = ctx.run_ctx.client
    tracker = BudgetTracker(BudgetIR(calls=120), client)
    guarded = ctx.run_ctx.derive(client=BudgetedClient(client, tracker))
    ctx.run_ctx = ctx.teacher_ctx = ctx.prompt_ctx = guarded
    ctx.budget = tracker
    result = mipro_v2(prog, ctx, **{**SMALL, "num_trials": 20})
    assert result.report["stopped"] == "budget"
    assert client.usage.snapshot()["calls"] <= 120
    assert result.report["baseline_score"] is not None


@pytest.mark.parametrize("params, n_train, n_val", [
    ({}, 20, 40),
    ({}, 100, 0),
    ({"max_bootstrapped_demos": 0, "max_labeled_demos": 0}, 20, 60),
    ({"minibatch": False, "auto": None, "num_candidates": 6, "num_trials": 8}, 10, 30),
])
def test_estimate_is_within_ten_percent_of_cold_cache_calls(
    tmp_path: Path, params: dict[str, Any], n_train: int, n_val: int
) -> None:
    # the mean over a few seeds: which combinations one seed's trials happen to reach
    # moves a single run by more than the estimate's error
    projected, actual = [], []
    for seed in (0, 1, 2, 3):
        world, prog, ctx = setup(n_train, n_val, cache=tmp_path / f"c{seed}.sqlite")
        world.answer = _teacher_always_right
        result = mipro_v2(prog, ctx, storage="memory", seed=seed, **params)
        actual.append(ctx.run_ctx.client.usage.snapshot()["calls"])
        projected.append(estimate(workload_of(prog, ctx), seed=seed, **params).calls)
        assert result.report["projected_calls"] == projected[-1]
    assert abs(sum(projected) - sum(actual)) <= 0.1 * sum(actual), (projected, actual)


def _teacher_always_right(request: LMRequest, text: str, name: str) -> str | None:
    """As ``answer``, but a run with demos (the bootstrapping teacher) is always right,
    so every bootstrap attempt succeeds (the estimate's assumption)."""
    if name == "label" and text and len(request.messages) > 2:
        return "positive" if "good" in text else "negative"
    return answer(request, text, name)


class Interrupt(Exception):
    """Stands in for Ctrl-C or a crash in the middle of a study."""


def test_interrupted_study_resumes_its_completed_trials(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    storage = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    params = {**SMALL, "num_trials": 8, "storage": storage}

    def stop_at_trial_4(event: dict[str, Any]) -> None:
        if event.stage == "trial" and event.done == 4 and event.finished:
            raise Interrupt

    world, prog, ctx = setup(progress=stop_at_trial_4)
    with pytest.raises(Interrupt):
        mipro_v2(prog, ctx, **params)
    world2, prog, ctx2 = setup()
    with caplog.at_level(logging.INFO, logger="lmpc"):
        resumed = mipro_v2(prog, ctx2, **params)
    # the candidates, the baseline, trials 1-3 and the full evaluation after trial 3
    assert "with 6 completed units" in caplog.text
    assert len(resumed.report["trials"]) == 9
    assert not proposals(world2)  # candidates came from the stored study
    # the rerun evaluated only the 4 remaining minibatches and the full evaluations
    rows_run = len(world2.requests)
    assert rows_run <= 4 * 8 + 3 * 24
    world3, prog, ctx3 = setup()
    again = mipro_v2(prog, ctx3, **params)  # a finished study does no more work
    assert not world3.requests
    assert again.program == resumed.program and again.report == resumed.report


def test_default_storage_is_sqlite_in_the_cache_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMPC_CACHE_DIR", str(tmp_path))
    world, prog, ctx = setup()
    mipro_v2(prog, ctx, **{**SMALL, "storage": None, "num_trials": 2})
    assert (tmp_path / "optuna.sqlite3").is_file()


def test_default_storage_follows_the_lm_cache_folder(tmp_path: Path) -> None:
    world, prog, ctx = setup(cache=tmp_path / "lm" / "cache.sqlite")
    mipro_v2(prog, ctx, **{**SMALL, "storage": None, "num_trials": 2})
    assert (tmp_path / "lm" / "optuna.sqlite3").is_file()


def test_too_little_data_is_a_clear_error() -> None:
    world, prog, ctx = setup(n_train=1, n_val=0)
    with pytest.raises(PassError, match="needs a valset"):
        mipro_v2(prog, ctx, **SMALL)


def test_prompt_model_role_writes_the_instructions() -> None:
    from world import run_context

    world, prog, ctx = setup()
    writer = World(answer=answer)
    ctx.prompt_ctx = run_context(writer)
    result = mipro_v2(prog, ctx, **SMALL)
    assert len(proposals(writer)) == 3 and not proposals(world)
    assert all("`label`" in r.messages[0]["content"] for r in world.requests)
    assert result.report["instructions"]["Classify.c"][1].startswith("Label it well")


def study_units(storage: str) -> list[dict[str, Any]]:
    """The completed units of the one study in ``storage``: kind, n and slot."""
    import optuna

    from lmpc.compiler.passes._units import slots

    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    slot_of = slots(trials)
    return [{**t.user_attrs["unit"], "slot": slot_of[t.number]} for t in trials
            if t.state == optuna.trial.TrialState.COMPLETE]


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    import threading

    storage = f"sqlite:///{tmp_path / 's.sqlite3'}"
    params = {**SMALL, "num_trials": 10, "storage": storage, "parallel_trials": 2}
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        world, prog, ctx = setup()
        results[i] = mipro_v2(prog, ctx, **params)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 2
    units = study_units(storage)
    trials = sorted(u["n"] for u in units if u["kind"] == "trial")
    assert trials == list(range(1, 11))  # every trial once; none done twice, none extra
    assert len({u["slot"] for u in units}) == len(units)
    # both finish with the whole study: the same program and the same report
    assert results[0].program == results[1].program
    assert results[0].report == results[1].report
    assert results[0].trajectory == results[1].trajectory and results[0].usage is None


def test_parallel_trials_give_the_same_result_in_one_process_or_two(tmp_path: Path) -> None:
    import threading

    params = {**SMALL, "num_trials": 8, "parallel_trials": 2}
    world, prog, ctx = setup()
    alone = mipro_v2(prog, ctx, **{**params, "storage": "memory"})
    storage = f"sqlite:///{tmp_path / 's.sqlite3'}"
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        world, prog, ctx = setup()
        results[i] = mipro_v2(prog, ctx, **{**params, "storage": storage})

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    report = {k: v for k, v in alone.report.items() if k != "study"}
    assert results[0].program == alone.program
    assert {k: v for k, v in results[0].report.items() if k != "study"} == report
    assert results[0].trajectory == alone.trajectory


def test_a_unit_asked_after_the_last_slot_is_pruned_not_run() -> None:
    """Two workers can both see one unit left and both ask: the later one gives its
    trial back, so the study never holds more units than it has."""
    import optuna
    from optuna.trial import TrialState

    from lmpc.compiler.passes._units import Units

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    units = Units(study, total=2)
    first = units.claim()
    assert first is not None and first.slot == 0
    units.run(first, lambda unit: 1.0)
    late = Units(study, total=2)
    late.all_taken = lambda: False  # worker B counted before worker A asked
    last = units.claim()  # worker A: the last unit
    extra = late.claim()  # worker B, one too many
    assert units.claim() is None  # asked after A: nothing left, and no surplus made
    assert last is not None and last.slot == 1 and extra is None
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED]


def test_a_unit_that_raised_is_queued_again_with_its_slot() -> None:
    import optuna

    from lmpc.compiler.passes._units import Units

    study = optuna.create_study(direction="maximize")
    units = Units(study, total=2)
    unit = units.claim()
    assert unit is not None

    def fails(unit: Any) -> float:
        raise Interrupt

    with pytest.raises(Interrupt):
        units.run(unit, fails)
    again = units.claim()  # the retry, before any fresh slot
    assert again is not None and again.slot == 0
    units.run(again, lambda unit: 1.0)
    units.drive(lambda unit: float(unit.slot))
    assert sorted(units.done()) == [0, 1]
