"""Results of running a program: predictions and traces (OPTIMIZERS.md "Trace")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TraceStep:
    """One predictor step of a run: what went in, what came out, which calls it made.

    ``outputs`` includes extra fields the predictor produced (e.g. ``reasoning`` for
    chain of thought), so a successful trace can become a bootstrapped demo as is.
    """

    predictor: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    call_ids: list[str] = field(default_factory=list)


@dataclass
class Prediction:
    """The outputs of one module run, plus its trace."""

    outputs: dict[str, Any]
    trace: list[TraceStep] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]
