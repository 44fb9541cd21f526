"""What every optimizer pass shares: the context it runs in and what it returns.

A pass is a function ``name(program, ctx, **params) -> PassResult`` in a module of
the same name under ``lmpc/compiler/passes/``. It never mutates its input IR (it works
on ``program.model_copy(deep=True)``), reads its parameters (already checked against
``lmpc.compiler.check.optimizer_specs``) as keyword arguments, and records what it tried in
``PassResult.report``. Everything a pass needs travels in ``PassContext`` — there are
no global settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lmpc.ir import Example, ProgramIR


@dataclass
class Candidate:
    """A program an optimizer produced and scored (kept so a later pass can use it)."""

    program: ProgramIR
    score: float
    label: str  # e.g. "seed=-3 (zero-shot)", "trial 7"


@dataclass
class PassResult:
    """The pass's output program, the scored candidates, and its provenance record."""

    program: ProgramIR
    candidates: list[Candidate] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


class BudgetExceeded(Exception):
    """Raised by the budget tracker when the next LM call would pass a hard cap.

    A pass that catches it may re-raise it with ``partial`` set to the best result it
    has so far; the pipeline then keeps that result instead of the pass's input.
    """

    def __init__(self, message: str = "", partial: PassResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class PassContext:
    """Everything one pass may use.

    ``run_ctx`` runs the task model (a ``lmpc.runtime.execute.RunContext``);
    ``teacher_ctx``, ``prompt_ctx`` and ``reflection_ctx`` run the other LM roles
    (each defaults to ``run_ctx``). ``metric(example, prediction, trace)`` returns a
    float in 0..1 (or bool); with a trace it should be strict. ``candidates`` are the
    scored programs of the previous pass (for ``ensemble(top = k)``). ``metric_field`` is
    the output the metric compares (demo selection balances its classes). ``progress``
    receives events such as ``{"pass": ..., "candidate": ..., "best": ...}`` — the CLI
    draws them; library code never prints.
    """

    module: str
    trainset: list[Example]
    valset: list[Example]
    metric: Callable[..., Any]
    run_ctx: Any
    teacher_ctx: Any = None
    prompt_ctx: Any = None
    reflection_ctx: Any = None
    seed: int = 0
    threads: int = 4
    candidates: list[Candidate] = field(default_factory=list)
    progress: Callable[[dict[str, Any]], None] = lambda event: None
    budget: Any = None  # lmpc.compiler.budget.BudgetTracker, when the optimize block sets one
    metric_field: str | None = None

    def __post_init__(self) -> None:
        self.teacher_ctx = self.teacher_ctx or self.run_ctx
        self.prompt_ctx = self.prompt_ctx or self.run_ctx
        self.reflection_ctx = self.reflection_ctx or self.run_ctx


class Pass(Protocol):
    """The signature every optimizer pass satisfies."""

    def __call__(self, program: ProgramIR, ctx: PassContext, **params: Any) -> PassResult: ...
