"""Units of work on one Optuna study, taken by every process that opens it.

A distributed search pass lays its work out as a fixed list of units numbered by
**slot** (for MIPROv2: the candidates, the baseline, each trial, each full evaluation).
What a unit does depends only on its slot and on the results of the units it waits for,
never on which process runs it or when, so one process and many give the same results.

A process takes a unit by asking the study for a trial: the storage numbers trials in
order under a lock, so each fresh trial is the next slot, and one asked after the last
slot is told PRUNED and never run (the study never holds more units than it has). A unit
runs under Optuna's heartbeat; a unit whose process died stops beating, is failed by
whichever process notices first (``fail_stale_trials``) and comes back as a WAITING
retry (``RetryHeartbeatStaleTrialCallback``) that the next ``ask`` hands out, with the
failed trial's slot. A unit that raised is failed and queued again the same way.

A process waiting for units it depends on runs queued retries of earlier slots itself, so
the work finishes while any process is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("lmpc")

POLL_S = 0.1  # how often a waiting process looks at the study again


def heartbeat_s() -> int:
    """Seconds between heartbeats of a running unit (``LMPC_STUDY_HEARTBEAT_S``, default 30);
    a unit silent for four of them is taken to be dead."""
    try:
        return max(1, int(os.environ.get("LMPC_STUDY_HEARTBEAT_S", "30")))
    except ValueError:
        return 30


@dataclass(frozen=True)
class Unit:
    """A unit this process holds: its slot and the RUNNING trial that claims it."""

    slot: int
    trial: optuna.trial.Trial


def is_retry(trial: FrozenTrial) -> bool:
    return "failed_trial" in trial.system_attrs


def slots(trials: list[FrozenTrial]) -> dict[int, int]:
    """Trial number → slot: fresh trials take the slots in order; a retry takes the slot
    of the trial it retries (the first of its chain)."""
    by_number = sorted(trials, key=lambda t: t.number)
    fresh: dict[int, int] = {}
    for t in by_number:
        if not is_retry(t):
            fresh[t.number] = len(fresh)
    out = dict(fresh)
    for t in by_number:
        if is_retry(t):
            out[t.number] = fresh.get(int(t.system_attrs["failed_trial"]), -1)
    return out


class Units:
    """The units of ``study``, ``total`` of them (slots ``0 .. total-1``)."""

    def __init__(self, study: optuna.Study, total: int) -> None:
        self.study = study
        self.total = total
        self.ran = 0  # units this process finished

    # ------------------------------------------------------------ reading

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def done(self) -> dict[int, FrozenTrial]:
        """Slot → its completed trial."""
        trials = self.trials()
        slot_of = slots(trials)
        out: dict[int, FrozenTrial] = {}
        for t in sorted(trials, key=lambda t: t.number):
            slot = slot_of[t.number]
            if t.state == TrialState.COMPLETE and 0 <= slot < self.total and slot not in out:
                out[slot] = t
        return out

    def complete(self) -> bool:
        return len(self.done()) == self.total

    # ------------------------------------------------------------ taking work

    def claim(self) -> Unit | None:
        """The next unit to run (a queued retry first), or None when every slot is taken."""
        self._fail_stale()
        if self.all_taken():
            return None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = self.study.ask()
        if _beats(self.study._storage):  # at once: a unit never beaten is never failed
            self.study._storage.record_heartbeat(trial._trial_id)
        slot = slots(self.trials()).get(trial.number, -1)
        if not 0 <= slot < self.total or slot in self.done():
            self.study.tell(trial, state=TrialState.PRUNED)  # surplus: never run
            return None
        return Unit(slot, trial)

    def all_taken(self) -> bool:
        """Every slot has been handed out and none is queued again (asking now would
        only make a surplus trial)."""
        trials = self.trials()
        return sum(1 for t in trials if not is_retry(t)) >= self.total and \
            not any(t.state == TrialState.WAITING for t in trials)

    def run(self, unit: Unit, work: Callable[[Unit], float]) -> float | None:
        """Run ``work`` for ``unit`` under a heartbeat and tell its value (None: the
        unit was given up as dead meanwhile and another process runs it)."""
        with heartbeat(self.study, unit.trial):
            value = work(unit)
            try:
                self.study.tell(unit.trial, value)
            except optuna.exceptions.UpdateFinishedTrialError:
                log.warning("unit %d was failed as stale while it ran; its retry counts",
                            unit.slot)
                return None
        self.ran += 1
        return value

    def drive(self, work: Callable[[Unit], float]) -> None:
        """Take and run units until every slot is taken, then wait until all are done."""
        while (unit := self.claim()) is not None:
            self.run(unit, work)
        self.wait(lambda done: len(done) == self.total, None, work)

    def wait(self, ready: Callable[[dict[int, FrozenTrial]], bool], holding: int | None,
             work: Callable[[Unit], float]) -> dict[int, FrozenTrial]:
        """Poll until ``ready(done)``; meanwhile fail dead units and run queued retries of
        slots below ``holding`` (any slot when this process holds none)."""
        while True:
            done = self.done()
            if ready(done):
                return done
            self._fail_stale()
            retry = self._pop_retry(holding)
            if retry is not None:
                self.run(retry, work)
                continue
            time.sleep(POLL_S)

    def _pop_retry(self, below: int | None) -> Unit | None:
        trials = self.trials()
        slot_of = slots(trials)
        storage = self.study._storage  # the public Study API cannot pop a chosen trial
        for t in sorted(trials, key=lambda t: t.number):
            slot = slot_of[t.number]
            if t.state != TrialState.WAITING or (below is not None and slot >= below):
                continue
            try:
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            return Unit(slot, optuna.trial.Trial(self.study, t._trial_id))
        return None

    def _fail_stale(self) -> None:
        if _beats(self.study._storage):
            with experimental_ok():
                optuna.storages.fail_stale_trials(self.study)


def _beats(storage: Any) -> bool:
    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)


def retry_later(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Fail ``trial`` and queue it again (same slot) for whoever asks next."""
    study.tell(trial, state=TrialState.FAIL)
    frozen = study._storage.get_trial(trial._trial_id)
    with experimental_ok():
        RetryHeartbeatStaleTrialCallback()(study, frozen)


@contextlib.contextmanager
def experimental_ok() -> Iterator[None]:
    """Optuna marks its heartbeat and retry API experimental (stable since 2.x)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[None]:
    """Beat for ``trial`` while it runs; if the body raises, fail it and queue it again.

    A unit interrupted by an exception (budget, Ctrl-C, an LM outage) must not stay
    RUNNING, or the others would wait for it; its retry is the next ``ask``'s.
    """
    storage = study._storage
    beats = _beats(storage)
    stop = threading.Event()
    thread = None
    if beats:
        storage.record_heartbeat(trial._trial_id)
        thread = threading.Thread(target=_beat, args=(storage, trial._trial_id, stop,
                                                      heartbeat_s()), daemon=True)
        thread.start()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            retry_later(study, trial)
        raise
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


def _beat(storage: Any, trial_id: int, stop: threading.Event, every: int) -> None:
    while not stop.wait(every):
        with contextlib.suppress(Exception):
            storage.record_heartbeat(trial_id)


USAGE_KEYS = ("lm_requests", "prompt_tokens", "completion_tokens", "cost_usd", "failures")


def work_so_far(ctx: Any) -> dict[str, Any] | None:
    """A pass's LM work so far, from its metered client (None when it has none).

    A process runs one unit at a time (a retry it runs while waiting finishes before
    its own unit starts), so the difference around a unit is that unit's work, judge
    calls included."""
    from lmpc.compiler.budget import MeteredClient

    client = getattr(ctx.run_ctx, "client", None)
    return client.snapshot() if isinstance(client, MeteredClient) else None


def work_between(before: dict[str, Any] | None, after: dict[str, Any] | None
                 ) -> dict[str, Any] | None:
    """The LM work between two ``work_so_far`` readings (cost rounded: float sums of
    threads finishing in another order differ in their last bits)."""
    if before is None or after is None:
        return None
    return {k: round(after[k] - before[k], 9) if isinstance(after[k], float)
            else after[k] - before[k] for k in USAGE_KEYS}


def add_work(total: dict[str, Any], part: dict[str, Any]) -> None:
    for k in USAGE_KEYS:
        total[k] = total.get(k, 0) + part.get(k, 0)
