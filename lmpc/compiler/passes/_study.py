"""Optuna studies for search passes: where they live, what they are called, resuming.

A study is stored (SQLite under the lmpc cache folder by default, or any Optuna RDB
URL) and named from everything that determines the search — the program IR, the
data, the pass parameters and the seed — so that re-running an interrupted build
finds the same study and continues from its completed trials, and several processes
can work one study together.

>>> study_name("mipro_v2", {"ir": "abc"}, 9) == study_name("mipro_v2", {"ir": "abc"}, 9)
True
>>> study_name("mipro_v2", {"ir": "abc"}, 9) == study_name("mipro_v2", {"ir": "abd"}, 9)
False
>>> storage_url("/tmp/x/study.sqlite3")
'sqlite:////tmp/x/study.sqlite3'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from lmpc.compiler.passes._demos import PassError
from lmpc.runtime.cache import default_cache_path

log = logging.getLogger("lmpc")

MEMORY = "memory"  # storage value for a study that is not persisted (tests, dry experiments)
HEARTBEAT_S = 30  # a RUNNING trial whose process stopped beating for GRACE_S is failed
GRACE_S = 120
OPEN_ATTEMPTS = 4


def study_name(pass_name: str, key: dict[str, Any], seed: int) -> str:
    """A deterministic study name from what determines the search."""
    blob = json.dumps({"key": key, "seed": seed}, sort_keys=True, default=str)
    return f"lmpc-{pass_name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def default_storage_path() -> Path:
    """``optuna.sqlite3`` beside the LM cache (``$LMPC_CACHE_DIR`` or ``~/.cache/lmpc``)."""
    return default_cache_path().parent / "optuna.sqlite3"


def storage_beside_cache(run_ctx: Any) -> str | None:
    """``optuna.sqlite3`` beside the LM cache file the run uses (``--cache-dir``), if any."""
    cache = getattr(getattr(run_ctx, "client", None), "cache", None)
    path = getattr(cache, "path", None)
    return str(Path(path).parent / "optuna.sqlite3") if path is not None else None


def storage_url(storage: str | None) -> str:
    """An Optuna RDB URL for ``storage``: None → the default file; a path → SQLite on it."""
    if storage is None:
        path = default_storage_path()
    elif "://" in storage:
        return storage
    else:
        path = Path(storage).expanduser()
    return f"sqlite:///{path}"


def quiet_optuna() -> None:
    """Route Optuna's log records to the ``lmpc.optuna`` logger, warnings and above only.

    Optuna installs its own stderr handler and logs every trial at INFO; lmpc reports
    trials through the pass's progress events instead.
    """
    optuna.logging.disable_default_handler()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logger = logging.getLogger("optuna")
    if not any(isinstance(h, _Forward) for h in logger.handlers):
        logger.addHandler(_Forward())
    logger.propagate = False


class _Forward(logging.Handler):
    """Re-emit a record on lmpc's logger so one configuration controls both."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("lmpc.optuna").handle(record)


def open_study(name: str, storage: str | None, seed: int) -> optuna.Study:
    """Create or load the study ``name`` with a seeded multivariate TPE sampler.

    Trials left RUNNING by a process that died (no heartbeat for ``GRACE_S``) are
    marked FAILED so they do not count as work in progress.
    """
    quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        backend = _storage(storage)
        study = optuna.create_study(study_name=name, storage=backend, sampler=sampler,
                                    direction="maximize", load_if_exists=True)
        if isinstance(backend, optuna.storages.RDBStorage):
            optuna.storages.fail_stale_trials(study)
    return study


def _storage(storage: str | None) -> optuna.storages.BaseStorage:
    if storage == MEMORY:
        return optuna.storages.InMemoryStorage()
    url = storage_url(storage)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # Several processes share one file: wait for the write lock instead of failing.
        kwargs["connect_args"] = {"timeout": 60}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs,
                                              heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
        except Exception as exc:  # SQLAlchemy raises many types; name the URL to the user
            # Two processes creating one new database race on its schema: the loser
            # finds the tables being made, waits, and opens them.
            if attempt + 1 == OPEN_ATTEMPTS:
                raise PassError(f"cannot open the Optuna storage {_redact(url)!r}: "
                                f"{exc}") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _redact(url: str) -> str:
    """Hide a password in ``dialect://user:password@host/db``."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        creds, _, host = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}{sep}{user}:***@{host}"
    return url


def counts(study: optuna.Study) -> tuple[int, int]:
    """(completed, running) trials of the study."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    done = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    return done, len(trials) - done


def ask_unless_full(study: optuna.Study, distributions: dict[str, Any], target: int
                    ) -> optuna.trial.Trial | None:
    """A new trial, or None when other workers filled the study to ``target`` first.

    Counting and asking are two steps, so two workers can both see one trial missing
    and both ask. Trial numbers are handed out in order by the storage: a trial with
    ``target`` completed or running trials numbered below it is surplus, and is told
    PRUNED (it never ran) instead of being run.
    """
    trial = ask(study, distributions)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    if sum(1 for t in trials if t.number < trial.number) >= target:
        study.tell(trial, state=TrialState.PRUNED)
        return None
    return trial


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed trials in trial-number order."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


def ask(study: optuna.Study, distributions: dict[str, Any]) -> optuna.trial.Trial:
    """``study.ask`` without Optuna's warning that heartbeats belong to ``optimize``:
    this search runs its own ask/tell loop and beats with :func:`heartbeat`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask(distributions)


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[None]:
    """Beat for ``trial`` while it runs; tell FAIL if the body raises.

    A trial interrupted by an exception (budget, Ctrl-C, an LM outage) must not stay
    RUNNING, or a resumed search would count it as work another process is doing.
    """
    storage = study._storage  # the public Study API has no accessor for it
    beats = isinstance(storage, optuna.storages.RDBStorage)
    stop = threading.Event()
    thread = None
    if beats:
        storage.record_heartbeat(trial._trial_id)
        thread = threading.Thread(target=_beat, args=(storage, trial._trial_id, stop),
                                  daemon=True)
        thread.start()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            study.tell(trial, state=TrialState.FAIL)
        raise
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


def _beat(storage: Any, trial_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(Exception):
            storage.record_heartbeat(trial_id)
