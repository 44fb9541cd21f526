"""bootstrap_random_search: the -3/-2/-1/shuffled seed scheme, scoring, ordering, stops."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, examples, pass_context  # noqa: E402

from lmpc.compiler.passes._demos import rng_for, stratified  # noqa: E402
from lmpc.compiler.passes._estimate import Workload, placeholder_rows  # noqa: E402
from lmpc.compiler.passes.base import BudgetExceeded  # noqa: E402
from lmpc.compiler.passes.bootstrap_random_search import (  # noqa: E402
    bootstrap_random_search,
    estimate,
    random_search,
)

TRAIN = [f"good day {i}" if i % 2 else f"bad day {i}" for i in range(8)]
VAL = [f"good night {i}" if i % 3 else f"bad night {i}" for i in range(6)]


def needs_demos(request: Any, text: str, name: str) -> str | None:
    """The scripted model is lost without demos: zero-shot it answers "neutral"."""
    return "neutral" if name == "label" and len(request.messages) == 2 else None


def _search(world: World, **params: Any) -> Any:
    prog = classify_program()
    ctx = pass_context(world, prog, "Classify", examples(TRAIN), examples(VAL))
    return bootstrap_random_search(prog, ctx, **params)


def _row(result: Any, seed: int) -> dict[str, Any]:
    return next(r for r in result.report["candidates"] if r["seed"] == seed)


def test_seed_scheme() -> None:
    result = _search(World(needs_demos), num_candidate_programs=3, max_bootstrapped_demos=3,
                     max_labeled_demos=5)
    rows = result.report["candidates"]
    assert [r["seed"] for r in rows] == [-3, -2, -1, 0, 1, 2]
    assert _row(result, -3)["demos"] == {"Classify.c": {"labeled": 0, "bootstrapped": 0}}
    assert _row(result, -2)["demos"] == {"Classify.c": {"labeled": 5, "bootstrapped": 0}}
    unshuffled = _row(result, -1)
    assert unshuffled["demos"] == {"Classify.c": {"labeled": 2, "bootstrapped": 3}}
    assert unshuffled["bootstrap"]["bootstrapped_examples"] == [0, 1, 2]  # trainset order
    for seed in (0, 1, 2):
        row = _row(result, seed)
        rng = rng_for(0, f"candidate:{seed}")
        order = list(range(len(TRAIN)))
        rng.shuffle(order)
        size = rng.randint(1, 3)
        assert row["max_bootstrapped_demos"] == size
        assert row["demos"]["Classify.c"] == {"bootstrapped": size, "labeled": 5 - size}
        # the shuffled trainset, walked class by class (stratified by the label)
        walked = stratified([examples(TRAIN)[i] for i in order], "label")[:size]
        assert row["bootstrap"]["bootstrapped_examples"] == sorted(e.index for e in walked)


def test_scored_on_the_valset_best_first_ties_in_seed_order() -> None:
    world = World(needs_demos)
    result = _search(world, num_candidate_programs=2, max_bootstrapped_demos=2,
                     max_labeled_demos=3)
    labels = [c.label for c in result.candidates]
    assert labels == ["seed=-2 (labeled only)", "seed=-1 (bootstrap, unshuffled)", "seed=0",
                      "seed=1", "seed=-3 (zero-shot)"]
    assert [c.score for c in result.candidates] == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert result.program.predictors["Classify.c"].demos  # the best has demos
    assert result.report["valset"] == "val"
    assert all(r["n"] == len(VAL) for r in result.report["candidates"])
    val_inputs = {f"good night {i}" if i % 3 else f"bad night {i}" for i in range(6)}
    assert val_inputs <= {world.current_input(r) for r in world.requests}


def test_valset_defaults_to_the_trainset() -> None:
    prog = classify_program()
    ctx = pass_context(World(), prog, "Classify", examples(TRAIN))
    result = random_search(prog, ctx, num_candidate_programs=1)
    assert result.report["valset"] == "train"
    assert all(r["n"] == len(TRAIN) for r in result.report["candidates"])


def test_stop_at_score_stops_early() -> None:
    result = _search(World(needs_demos), num_candidate_programs=5, stop_at_score=1.0)
    assert [r["seed"] for r in result.report["candidates"]] == [-3, -2]
    assert result.report["stopped"] == "stop_at_score"
    assert result.report["best"] == "seed=-2 (labeled only)"


class _Budget:
    """Allows ``n`` checks, then refuses (as the build's tracker does at its cap)."""

    exceeded: str | None = None

    def __init__(self, n: int) -> None:
        self.left = n

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            self.exceeded = "budget of test calls reached"
            raise BudgetExceeded(self.exceeded)


def test_budget_keeps_the_best_so_far() -> None:
    prog = classify_program()
    ctx = pass_context(World(needs_demos), prog, "Classify", examples(TRAIN), examples(VAL),
                       budget=_Budget(3))
    result = bootstrap_random_search(prog, ctx, num_candidate_programs=4)
    assert result.report["stopped"] == "budget"
    assert [c.label for c in result.candidates] == ["seed=-2 (labeled only)",
                                                    "seed=-3 (zero-shot)"]


def test_estimate() -> None:
    work = Workload(classify_program(), "Classify", placeholder_rows(10), 20)
    est = estimate(work, num_candidate_programs=2)
    # a full evaluation per candidate, plus the teacher: the first 4 rows (seed -1) and
    # the first 1-4 of two shuffles, each row once (cached); at most every row once
    assert est.max_calls == 10 + 5 * 20 and 5 * 20 + 4 <= est.calls < est.max_calls
    assert est.candidates == 5 and est.val_rows == 20
    uncached = estimate(work.with_cache(False), num_candidate_programs=2)
    assert uncached.max_calls == 3 * 10 + 5 * 20  # each of the 3 walks pays


def _shared_search(storage: str, workers: int, **params: Any) -> list[Any]:
    """``workers`` threads, each a process's worth of pass, on one study in ``storage``."""
    import threading

    from lmpc.compiler.passes.base import StudyOptions

    results: list[Any] = [None] * workers

    def work(i: int) -> None:
        world = World(needs_demos)
        prog = classify_program()
        ctx = pass_context(world, prog, "Classify", examples(TRAIN), examples(VAL))
        ctx.study = StudyOptions(name="shared", storage=storage)
        results[i] = bootstrap_random_search(prog, ctx, **params)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_candidates_shared_by_two_workers_give_the_one_process_result(tmp_path: Path) -> None:
    params = {"num_candidate_programs": 5, "max_bootstrapped_demos": 3, "max_labeled_demos": 4}
    alone = _search(World(needs_demos), **params)
    storage = f"sqlite:///{tmp_path / 's.sqlite3'}"
    first, second = _shared_search(storage, 2, **params)
    for shared in (first, second):
        assert shared.program == alone.program
        assert shared.report == alone.report
        assert [c.label for c in shared.candidates] == [c.label for c in alone.candidates]
    assert [t["label"] for t in first.trajectory] == [r["label"]
                                                      for r in alone.report["candidates"]]
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 8  # seeds -3 .. 4, each once


def test_stop_at_score_in_a_shared_search_keeps_the_candidates_up_to_the_first(
        tmp_path: Path) -> None:
    params = {"num_candidate_programs": 6, "max_bootstrapped_demos": 3, "stop_at_score": 0.5}
    alone = _search(World(needs_demos), **params)
    (shared,) = _shared_search(f"sqlite:///{tmp_path / 's.sqlite3'}", 1, **params)
    assert alone.report["stopped"] == shared.report["stopped"] == "stop_at_score"
    assert shared.report == alone.report and shared.program == alone.program
