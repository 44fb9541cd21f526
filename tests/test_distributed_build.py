"""`lmpc build --worker`: several real processes work one MIPROv2 study in PostgreSQL.

Every process is a real ``lmpc build`` against a real LM server on 127.0.0.1
(``fake_server``, a text model whose replies depend on the prompt) and the session's
real PostgreSQL server (``conftest.py``), which holds both the study and the shared LM
cache (``LMPC_CACHE_URL``). The model is right on a review when the prompt shows at least
three demos or its instruction carries an odd version number, so trials score differently
and the search has a real best.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fake_server import fake_server, prompt_of, sentiment_reply, sentiment_source

PASSES = ("mipro_v2(auto = none, num_candidates = 3, num_trials = {trials}, "
          "minibatch_size = 4, minibatch_full_eval_steps = 3, parallel_trials = 4)")
STUDY = "team-build"


def reply(body: dict[str, Any]) -> str:
    prompt = prompt_of(body)
    if "proposed_instruction" in prompt.rsplit("Classify", 1)[-1] or \
            "proposed_instruction" in prompt[-400:]:
        version = sum(map(ord, prompt)) % 7
        return f" Decide whether the review is positive or negative (version {version})."
    right = sentiment_reply(body)
    demos = prompt.count("The movie was") - 1
    version = re.search(r"version (\d)", prompt)
    if demos >= 3 or (version and int(version.group(1)) % 2):
        return right
    last = prompt.rsplit("The movie was", 1)[-1]
    flip = sum(map(ord, last)) % 3 == 0
    return (" negative" if right.strip() == "positive" else " positive") if flip else right


def _env(tmp_path: Path, name: str, postgres_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LMPC_CACHE_URL"}
    env.update({"LMPC_CACHE_DIR": str(tmp_path / name), "LMPC_TRUST_FILE": "/nonexistent",
                "LMPC_STUDY_HEARTBEAT_S": "1", **extra})
    if postgres_url:
        env["LMPC_CACHE_URL"] = postgres_url
    return env


def _lmpc(source: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lmpc", "build", str(source), "--quiet",
                             "--json", "--threads", "2", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _finish(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()[-3000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _units(storage: str) -> list[dict[str, Any]]:
    import optuna

    from lmpc.compiler.passes._units import slots

    study = optuna.load_study(study_name=f"{STUDY}.0.mipro_v2", storage=storage)
    trials = study.get_trials(deepcopy=False)
    slot_of = slots(trials)
    return [{"state": t.state.name, "slot": slot_of[t.number], **t.user_attrs.get("unit", {})}
            for t in trials]


def _check_study(storage: str, trials: int) -> None:
    units = _units(storage)
    done = [u for u in units if u["state"] == "COMPLETE"]
    numbers = sorted(u["n"] for u in done if u["kind"] == "trial")
    assert numbers == list(range(1, trials + 1))  # each trial once, none beyond the count
    assert len({u["slot"] for u in done}) == len(done)
    assert all(u["state"] in ("COMPLETE", "PRUNED", "FAIL") for u in units)


def test_two_workers_and_a_finisher_write_the_artifact_of_one_process(
        postgres_server: str, tmp_path: Path) -> None:
    from postgres_server import fresh_database

    source_dir = tmp_path / "src"
    source_dir.mkdir()
    with fake_server(reply, delay_s=0.02) as server:
        source = sentiment_source(source_dir, server.url, passes=PASSES.format(trials=9))
        alone_db = fresh_database(postgres_server, "alone")
        alone = _finish(_lmpc(source, "-o", str(tmp_path / "alone.json"), "--study", STUDY,
                              "--storage", alone_db, env=_env(tmp_path, "a", alone_db)))
        shared = fresh_database(postgres_server, "shared")
        workers = [_lmpc(source, "--worker", "--study", STUDY, "--storage", shared,
                         env=_env(tmp_path, f"w{i}", shared)) for i in (1, 2)]
        finisher = _lmpc(source, "-o", str(tmp_path / "team.json"), "--study", STUDY,
                         "--storage", shared, env=_env(tmp_path, "f", shared))
        ran = [_finish(w) for w in workers]
        team = _finish(finisher)
    assert all(r["worker"] for r in ran)
    _check_study(shared, 9)
    assert alone["scores"] == team["scores"]
    assert (tmp_path / "alone.json").read_bytes() == (tmp_path / "team.json").read_bytes()


def test_a_worker_killed_mid_trial_leaves_a_study_the_others_finish(
        postgres_url: str, tmp_path: Path) -> None:
    with fake_server(reply, delay_s=0.05) as server:
        source = sentiment_source(tmp_path, server.url, passes=PASSES.format(trials=12))
        victim = _lmpc(source, "--worker", "--study", STUDY, "--storage", postgres_url,
                       env=_env(tmp_path, "victim", postgres_url))
        deadline = time.monotonic() + 120
        while not any(u["state"] == "RUNNING" and u.get("kind", "trial") != "space"
                      and u["slot"] > 1 for u in _safe_units(postgres_url)):
            assert time.monotonic() < deadline and victim.poll() is None
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed = [u["slot"] for u in _units(postgres_url) if u["state"] == "RUNNING"]
        assert killed, "the worker was killed between two units"
        other = _lmpc(source, "--worker", "--study", STUDY, "--storage", postgres_url,
                      env=_env(tmp_path, "other", postgres_url))
        finisher = _lmpc(source, "-o", str(tmp_path / "a.json"), "--study", STUDY,
                         "--storage", postgres_url, env=_env(tmp_path, "f", postgres_url))
        _finish(other)
        summary = _finish(finisher)
    assert (tmp_path / "a.json").is_file() and summary["scores"]["val"]["after"] is not None
    _check_study(postgres_url, 12)
    units = _units(postgres_url)
    assert [u["slot"] for u in units if u["state"] == "FAIL"] == killed  # then retried


def _safe_units(storage: str) -> list[dict[str, Any]]:
    try:
        return _units(storage)
    except KeyError:  # the study is not made yet
        return []


def test_with_no_server_workers_share_the_sqlite_study_beside_the_cache(
        tmp_path: Path) -> None:
    """No PostgreSQL, no storage given: processes on one machine (one LMPC_CACHE_DIR)
    share ``optuna.sqlite3`` beside the SQLite cache."""
    with fake_server(reply, delay_s=0.02) as server:
        source = sentiment_source(tmp_path, server.url, passes=PASSES.format(trials=6))
        env = _env(tmp_path, "machine", None)
        worker = _lmpc(source, "--worker", "--study", STUDY, env=env)
        finisher = _lmpc(source, "-o", str(tmp_path / "a.json"), "--study", STUDY, env=env)
        assert _finish(worker)["worker"]
        _finish(finisher)
    _check_study(f"sqlite:///{tmp_path / 'machine' / 'optuna.sqlite3'}", 6)
    artifact = json.loads((tmp_path / "a.json").read_text())
    (mipro,) = artifact["passes"]
    assert [t["label"] for t in mipro["trajectory"]] == \
        ["baseline"] + [f"trial {i}" for i in range(1, 7)]


def test_a_worker_on_a_pipeline_with_nothing_to_share_says_so(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:1/v1")
    done = subprocess.run([sys.executable, "-m", "lmpc", "build", str(source), "--worker",
                           "--quiet"], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, "c", None))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "shares its work with workers" in done.stderr
