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
    # A pass whose work is shared by several processes (a study) knows its whole LM work
    # and trajectory from the study; the driver records these instead of what this
    # process measured, so every process writes the same artifact.
    usage: dict[str, Any] | None = None
    trajectory: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class StudyOptions:
    """Where a distributed pass keeps its study, from ``lmpc build --study/--storage``.

    ``name``: the study's name for this pass (the build's name plus the pass's place in
    the pipeline); ``storage``: an Optuna RDB URL overriding the pass's ``storage``;
    ``worker``: this process only takes work (``lmpc build --worker``).
    """

    name: str | None = None
    storage: str | None = None
    worker: bool = False


class BudgetExceeded(Exception):
    """Raised by the budget tracker when the next LM call would pass a hard cap.

    A pass that catches it may re-raise it with ``partial`` set to the best result it
    has so far; the pipeline then keeps that result instead of the pass's input.
    """

    def __init__(self, message: str = "", partial: PassResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


# ---------------------------------------------------------------- progress events
#
# Passes and the driver report what they are doing as these typed events, through
# ``PassContext.emit`` (passes) or the driver's progress callback; the CLI draws them
# (a live bar on a terminal, plain lines otherwise). Library code never prints.


@dataclass(frozen=True)
class PassStarted:
    """A pass (or an evaluation of the driver) begins.

    ``projected``: its dry-run LM calls; ``requests``: the requests it will send, the
    cache's answers included (what ``Progress.requests`` counts up to).
    """

    pass_name: str
    index: int | None = None  # position in the pipeline (0-based), None for evaluations
    total: int | None = None  # passes in the pipeline
    projected: int | None = None
    requests: int | None = None


@dataclass(frozen=True)
class Progress:
    """Where a pass is: ``stage`` ``done`` of ``total`` (candidate 3 of 19, trial 7 of 10).

    ``examples`` and ``requests`` are what the pass has evaluated and sent so far;
    ``finished`` marks the end of a unit of work (a candidate scored, a trial told), which
    plain-text progress prints as a line.
    """

    pass_name: str
    stage: str
    done: int | None = None
    total: int | None = None
    label: str = ""
    score: float | None = None
    best: float | None = None
    examples: int = 0
    requests: int = 0
    finished: bool = False


@dataclass(frozen=True)
class PassFinished:
    """A pass (or evaluation) ended, with the LM requests it sent and its best score."""

    pass_name: str
    requests: int = 0
    best: float | None = None


@dataclass(frozen=True)
class BuildWarning:
    """A coded warning for the person running the build (e.g. W1606)."""

    code: str
    message: str
    hint: str = ""
    pass_name: str = ""


@dataclass(frozen=True)
class BuildNote:
    """Something the person running the build should know that is not a problem."""

    message: str


ProgressEvent = PassStarted | Progress | PassFinished | BuildWarning | BuildNote


def _ignore(event: Any) -> None:
    return None


def _no_requests() -> int:
    return 0


@dataclass
class PassContext:
    """Everything one pass may use.

    ``run_ctx`` runs the task model (a ``lmpc.runtime.execute.RunContext``);
    ``teacher_ctx``, ``prompt_ctx`` and ``reflection_ctx`` run the other LM roles
    (each defaults to ``run_ctx``). ``metric(example, prediction, trace)`` returns a
    float in 0..1 (or bool); with a trace it should be strict. ``candidates`` are the
    scored programs of the previous pass (for ``ensemble(top = k)``). ``metric_field`` is
    the output the metric compares (demo selection balances its classes). ``progress``
    receives the typed events above; a pass sends them with :meth:`emit` and
    :meth:`eval_progress`, which add the pass's name, the examples it has evaluated and
    the LM requests it has sent (``requests``, read from the pass's metered client).
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
    progress: Callable[[Any], None] = _ignore
    budget: Any = None  # lmpc.compiler.budget.BudgetTracker, when the optimize block sets one
    metric_field: str | None = None
    pass_name: str = ""
    requests: Callable[[], int] = _no_requests
    examples_done: int = 0
    study: StudyOptions | None = None

    def emit(self, stage: str, done: int | None = None, total: int | None = None, *,
             label: str = "", score: float | None = None, best: float | None = None,
             finished: bool = False) -> None:
        """Send a :class:`Progress` event for this pass."""
        self.progress(Progress(self.pass_name, stage, done, total, label, score, best,
                               self.examples_done, self.requests(), finished))

    def eval_progress(self, stage: str, label: str = "", best: float | None = None
                      ) -> Callable[[dict[str, Any]], None]:
        """A callback for ``evaluate(progress=...)``: counts examples, emits events."""
        seen = [0]

        def on_chunk(event: dict[str, Any]) -> None:
            done = int(event.get("done", 0))
            self.examples_done += done - seen[0]
            seen[0] = done
            self.emit(stage, done, event.get("total"), label=label,
                      score=event.get("score"), best=best)

        return on_chunk

    def __post_init__(self) -> None:
        self.teacher_ctx = self.teacher_ctx or self.run_ctx
        self.prompt_ctx = self.prompt_ctx or self.run_ctx
        self.reflection_ctx = self.reflection_ctx or self.run_ctx


class Pass(Protocol):
    """The signature every optimizer pass satisfies."""

    def __call__(self, program: ProgramIR, ctx: PassContext, **params: Any) -> PassResult: ...
