"""``RunContext``: everything one run needs, passed explicitly (there are no globals).

Two programs with different LMs run side by side in one process because each call
carries its own context. ``derive`` makes a modified copy that shares the client and
the stats counters, so counts from nested or parallel runs add up in one place.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmpc.ir import LMIR
from lmpc.runtime.errors import RuntimeFailure
from lmpc.runtime.trust import Trust

if TYPE_CHECKING:
    from lmpc.runtime.lm import LMClient

# reward(inputs, outputs) -> score; used by best_of_n and refine
RewardFn = Callable[[dict[str, Any], dict[str, Any]], float | bool]


class RunStats:
    """Thread-safe named counters (e.g. ``adapter_fallbacks``, ``suggest_failures``)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class RunContext:
    """The LM client, the LMs, and per-run knobs of one program run.

    - ``program_lms``: the program's named LMs (a predictor's ``lm`` names one);
      ``task_lm``: the LM of predictors that name none.
    - ``trust``: what the runner allows (Python code, endpoints for secrets, files
      outside the project); see ``lmpc.runtime.trust``. The default allows nothing.
    - ``temperature``: overrides every LM's temperature when set; ``rollout``: the
      resample index that keeps deliberate resamples out of the cache.
    - ``attribution``: added to every LM call's record (``{"pass": ..., "step": ...}``).
    - ``hide_example``: input values of the example being run; demos with equal input
      values are not shown (a teacher never sees the answer it is asked for).
    - ``reward_fns``: reward functions by metric name, for best_of_n and refine.
    - ``parse_retries``: how many times a reply that does not parse is asked again.
    """

    client: LMClient
    program_lms: dict[str, LMIR]
    task_lm: LMIR
    base_dir: Path = Path(".")
    trust: Trust = field(default_factory=Trust)
    temperature: float | None = None
    rollout: int = 0
    attribution: dict[str, Any] = field(default_factory=dict)
    hide_example: dict[str, Any] | None = None
    reward_fns: dict[str, RewardFn] = field(default_factory=dict)
    stats: RunStats = field(default_factory=RunStats)
    parse_retries: int = 1

    def derive(self, **changes: Any) -> RunContext:
        """A copy with ``changes`` applied; client and stats are shared."""
        return dataclasses.replace(self, **changes)

    def lm_named(self, name: str | None) -> LMIR:
        """The LM a predictor uses: its named LM, else the task LM."""
        if name is None:
            return self.task_lm
        lm = self.program_lms.get(name)
        if lm is None:
            known = ", ".join(sorted(self.program_lms)) or "none"
            raise RuntimeFailure(f"unknown LM {name!r} (declared: {known})")
        return lm

    def file(self, path: str | Path, what: str) -> Path:
        """A file the program reads, resolved against ``base_dir`` and checked against
        the trust (``FileNotAllowed`` outside the project)."""
        return self.trust.resolve_file(path, self.base_dir, what)
