"""``ensemble(size=none, top=none, reduce=majority)``: run several programs, combine outputs.

The members are the scored candidates of the previous pass (``ctx.candidates``, best
first): the ``top`` best, a seeded random ``size`` of them, or all. The program keeps the
best candidate's predictors as its own state and gains an ``EnsembleIR`` whose members
hold each candidate's predictors of the module; the runtime runs every member and
reduces each output field — ``majority`` (the most common value; ties go to the better
candidate) or a Python callable ``"pkg.mod:fn"`` given the list of member outputs.
No LM calls are made here.

Before / after, after ``random_search`` with candidates scored 0.9, 0.8, 0.7, 0.4::

    before: ensemble = none
    after (top = 3): ensemble = {members: [seed 3, seed -1, seed 7], reduce: majority}
"""

from __future__ import annotations

from typing import Any

from lmpc.compiler.passes._demos import PassError, rng_for
from lmpc.compiler.passes._estimate import Estimate, Workload
from lmpc.compiler.passes.base import Candidate, PassContext, PassResult
from lmpc.ir import EnsembleIR, PredictorIR, ProgramIR


def ensemble(
    program: ProgramIR,
    ctx: PassContext,
    size: int | None = None,
    top: int | None = None,
    reduce: str = "majority",
) -> PassResult:
    """Combine the previous pass's candidates into one ensembled program."""
    _check(ctx, size, top, reduce)
    ranked = sorted(ctx.candidates, key=lambda c: -c.score)  # stable: ties keep their order
    chosen = _choose(ranked, size, top, ctx.seed)
    out = chosen[0].program.model_copy(deep=True)
    out.ensemble = EnsembleIR(members=[_member(c, ctx.module) for c in chosen], reduce=reduce)
    report: dict[str, Any] = {
        "params": {"size": size, "top": top, "reduce": reduce},
        "available": len(ranked),
        "members": [{"label": c.label, "score": c.score} for c in chosen],
    }
    ctx.emit("members", len(chosen), len(ranked), label=f"reduce: {reduce}", finished=True)
    return PassResult(program=out, candidates=list(ctx.candidates), report=report)


def _check(ctx: PassContext, size: int | None, top: int | None, reduce: str) -> None:
    if not ctx.candidates:
        raise PassError(
            "ensemble needs the scored candidates of a previous pass, and there are none: "
            "put it after a search pass, e.g. `random_search(...) then ensemble(top = 5)`"
        )
    if reduce != "majority" and (":" not in reduce or not all(reduce.split(":", 1))):
        raise PassError(f"ensemble reduce must be \"majority\" or a Python callable "
                        f"\"pkg.mod:fn\", got {reduce!r}")
    for name, value in (("size", size), ("top", top)):
        if value is not None and value < 1:
            raise PassError(f"ensemble {name} must be at least 1, got {value}")


def _choose(ranked: list[Candidate], size: int | None, top: int | None,
            seed: int) -> list[Candidate]:
    """The members, best first: top k, a seeded random subset, or all."""
    chosen = ranked[:top] if top is not None else ranked
    if size is not None and size < len(chosen):
        picked = set(rng_for(seed, "ensemble").sample(range(len(chosen)), size))
        chosen = [c for i, c in enumerate(chosen) if i in picked]
    return chosen


def _member(candidate: Candidate, module: str) -> dict[str, PredictorIR]:
    """One member: the candidate's predictors of ``module`` by id (copied)."""
    return {p.id: p.model_copy(deep=True) for p in candidate.program.predictors_of(module)}


def estimate_calls(program: ProgramIR, n_train: int, n_val: int, **params: Any) -> int:
    """Choosing members makes no LM call (running the ensemble does, later)."""
    return 0


def estimate(work: Workload, **params: Any) -> Estimate:
    """No LM calls here; the build's final evaluation runs every member (the plan)."""
    return Estimate.fixed(0)
