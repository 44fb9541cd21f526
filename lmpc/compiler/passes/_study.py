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

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from lmpc.compiler.passes._demos import PassError
from lmpc.compiler.passes._units import experimental_ok, heartbeat_s
from lmpc.runtime.cache import default_cache_path

log = logging.getLogger("lmpc")

MEMORY = "memory"  # storage value for a study that is not persisted (tests, dry experiments)
OPEN_ATTEMPTS = 4


def study_name(pass_name: str, key: dict[str, Any], seed: int) -> str:
    """A deterministic study name from what determines the search."""
    blob = json.dumps({"key": key, "seed": seed}, sort_keys=True, default=str)
    return f"lmpc-{pass_name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def search_key(key: dict[str, Any]) -> str:
    """A hash of what determines a search, the same on every machine (no file paths)."""
    blob = json.dumps(portable(key), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def portable(value: Any) -> Any:
    """``value`` without source spans (they name files by their path on one machine)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    return value


def locate(pass_name: str, key: dict[str, Any], seed: int, options: Any, storage: str | None,
           run_ctx: Any) -> tuple[str, str | None]:
    """(study name, storage) of a pass: the build's ``--study``/``--storage`` when given
    (``options``: a ``StudyOptions``), else a name from ``key`` and the pass's
    ``storage`` parameter, else SQLite beside the LM cache."""
    name = getattr(options, "name", None) or study_name(pass_name, portable(key), seed)
    where = getattr(options, "storage", None) or storage
    if where is None:
        where = storage_beside_cache(run_ctx)
    return name, where


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


def open_study(name: str, storage: str | None, key: str) -> optuna.Study:
    """Create or load the study ``name``, made for the search whose key is ``key``.

    The study holds units of work (``_units``), never sampled by Optuna: each pass plans
    its trials itself. A study of that name made for another search (other program,
    data, parameters or seed) is refused rather than mixed with this one.
    """
    quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name=name, storage=_storage(storage),
                                    sampler=optuna.samplers.RandomSampler(seed=0),
                                    direction="maximize", load_if_exists=True)
    found = study.user_attrs.get("key")
    if found is None:
        study.set_user_attr("key", key)
    elif found != key:
        raise PassError(f"the study {name!r} in {_redact(storage_url(storage))!r} was "
                        "started for another search (program, data, parameters or seed "
                        "differ); give this build another study name")
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
            beat = heartbeat_s()
            with experimental_ok():
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=beat,
                    grace_period=4 * beat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
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
