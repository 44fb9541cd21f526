"""Dry-run projections: how many LM calls a pass will make, without making any.

Every pass module has ``estimate(work, **params) -> Estimate``. ``Workload`` says what
the pass will run on — the program, the training rows (their labels decide the order of
a stratified walk), the valset size, the build's seed and whether the LM cache is on —
and an ``Estimate`` gives

- ``calls``: the new LM calls expected when the teacher succeeds on every bootstrap
  attempt and the prompt model's proposals are all usable (each pass says what else it
  assumes); with the cache on, a request repeated within the build is counted once;
- ``max_calls``: the same if the teacher fails on every attempt, so bootstrapping walks
  the whole trainset (every round) — the figure to set a hard budget from;
- what the build's final evaluation can reuse from the cache: the valset rows the
  result was fully scored on, and whether each candidate handed on was scored there too
  (an ``ensemble`` of them then re-runs only the test rows).

``tests/test_dry_run_grid.py`` runs every pass over a grid of settings with a scripted
model and holds each projection within 10% of the calls really made.

>>> work = Workload(program=None, module="M", trainset=placeholder_rows(5), n_val=3)
>>> walked(work, [(list(range(5)), 2), ([4, 3, 2, 1, 0], 2)], field=None)
4
>>> walked(work.with_cache(False), [(list(range(5)), 2), ([4, 3, 2, 1, 0], 2)], field=None)
4
>>> walked(work.with_cache(False), [(list(range(5)), 2), ([1, 0, 2, 3, 4], 2)], field=None)
4
>>> walked(work, [(list(range(5)), 2), ([1, 0, 2, 3, 4], 2)], field=None)
2
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lmpc.compiler.passes._demos import ClassQueue, class_of
from lmpc.ir import Example, ProgramIR


@dataclass(frozen=True)
class Workload:
    """What a pass will run on, as far as the dry run can know it."""

    program: Any  # ProgramIR (None in doctests)
    module: str
    trainset: list[Example]
    n_val: int
    seed: int = 0
    cache: bool = True
    metric_field: str | None = None
    scoring_calls: int = 0  # LM calls the metric makes per scored example (an LM judge)
    # the pass's instruction writer is an embedded base model (W1606): its proposals are
    # mostly dropped by the guard and re-asked, which changes how a search spends its budget
    weak_writer: bool = False

    @property
    def n_train(self) -> int:
        return len(self.trainset)

    def per_run(self) -> int:
        """LM calls one run of the module makes, plus the metric's own on its result."""
        return calls_per_run(self.program, self.module) + self.scoring_calls

    def with_cache(self, cache: bool) -> Workload:
        return replace(self, cache=cache)


@dataclass(frozen=True)
class Estimate:
    """A pass's projected LM calls (see the module docstring)."""

    calls: int
    max_calls: int
    candidates: int = 0
    # rows of the split the build scores first (val, or train without one) on which the
    # returned program — and the unchanged one — were fully evaluated
    val_rows: int = 0
    candidates_on_val: bool = False  # every candidate handed on was scored on those rows
    baseline_rows: int = 0
    training: str = ""  # weight passes: the training the pass will run, in words
    # the pass is expected to hand back its input unchanged (a weak writer's proposals
    # all dropped): the build's final evaluation then repeats its first
    returns_input: bool = False

    @classmethod
    def fixed(cls, calls: int, **kw: Any) -> Estimate:
        """An estimate that does not depend on the teacher."""
        return cls(calls=calls, max_calls=calls, **kw)


def placeholder_rows(n: int) -> list[Example]:
    """``n`` unlabeled rows, when only the trainset's size is known."""
    return [Example({}, {}, index=i) for i in range(n)]


def walked(work: Workload, walks: list[tuple[list[int], int]], field: str | None) -> int:
    """Teacher runs over ``walks`` — (order of trainset positions, demos wanted) — when
    every attempt succeeds: each walk takes its first ``wanted`` positions (class by
    class with a ``field``). With the cache on, a position run before is free (the same
    teacher request); without it, every walk pays for its own."""
    seen: set[int] = set()
    total = 0
    for order, wanted in walks:
        queue = ClassQueue(order, lambda pos: class_of(work.trainset[pos], field))
        taken = []
        while len(taken) < wanted and (pos := queue.next()) is not None:
            taken.append(pos)
            queue.taken(pos)
        total += len(taken)
        seen.update(taken)
    return len(seen) if work.cache else total


def judge_calls(program: ProgramIR, metric_name: str | None) -> int:
    """LM-judge metrics inside ``metric_name`` (each scores an example with one call)."""
    if program is None or not metric_name:
        return 0
    metric = program.metrics.get(metric_name)
    if metric is None:
        return 0
    if metric.kind == "judge":
        return 1
    if metric.kind == "weighted":
        return sum(judge_calls(program, name) for _, name in metric.parts)
    return 0


def workload_of(program: ProgramIR, ctx: Any) -> Workload:
    """The workload of a pass about to run in ``ctx`` (a ``PassContext``)."""
    client = getattr(ctx.run_ctx, "client", None)
    return Workload(program=program, module=ctx.module, trainset=list(ctx.trainset),
                    n_val=len(ctx.valset), seed=ctx.seed,
                    cache=getattr(client, "cache", None) is not None,
                    metric_field=ctx.metric_field,
                    scoring_calls=int(bool(getattr(ctx.metric, "uses_lm", False))))


def writes_weakly(run_ctx: Any) -> bool:
    """Whether the LM of ``run_ctx`` (a pass's instruction writer) is an embedded base
    model, whose proposals the guard mostly drops (W1606)."""
    from lmpc.compiler.check.prompt_model import EMBEDDED_PREFIX

    model = getattr(getattr(run_ctx, "task_lm", None), "model", "") or ""
    return model.startswith(EMBEDDED_PREFIX)


def calls_per_run(program: ProgramIR, module: str | None = None) -> int:
    """About how many LM calls one run of the module makes (for dry-run projections)."""
    if module is None:
        module = program.optimizes[0].program if program.optimizes else None
    preds = program.predictors_of(module) if module else list(program.predictors.values())
    total = 0
    for p in preds:
        opts = p.options
        total += int(opts.get("n") or opts.get("m") or opts.get("max_iters") or 1)
    return max(total, 1)
