"""MIPROv2 trial throughput with 1, 2 and 4 worker processes on one study in PostgreSQL.

Each point is a real build of the same program, data and seed against the 100 ms
loopback server (``bench/_loopback.py --vary``: it answers the proposer too, and routes a
third of the tickets wrongly unless the prompt has two demos or an odd-draft instruction,
so the trials score differently). A point starts N − 1 ``lmpc build --worker`` processes
and one plain ``lmpc build`` (the finisher, which also takes trials and writes the
artifact), all with ``--threads`` threads of their own, the same ``--study`` and a fresh
PostgreSQL database (``tests/postgres_server.py``) for the study. By default no process
uses an LM cache (``--no-cache``), so every trial sends its whole minibatch and a trial
takes the model's time; with ``--cache`` the same database is the shared LM cache
(``LMPC_CACHE_URL``): the TPE favourites' repeated rows are then free and the trials
measure lmpc's overhead more than the model (both are reported in bench/README.md).

Trial throughput is the trials' count over the span from the first trial's start to the
last one's end (each unit records when it ran, after waiting for what it needs): process
start-up, the proposals and the baseline are outside it, the full evaluations between
trials inside it. The artifacts of every point are compared byte for byte.

Run: ``python bench/distributed_workers.py [--workers 1,2,4] [--trials 24] [--threads 4]
[--cache]`` (writes ``bench/results/distributed_workers.json``, or ``..._cache.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL server of the tests

from _loopback import loopback_server  # noqa: E402
from postgres_server import fresh_database, postgres_cluster  # noqa: E402

STUDY = "bench"
SOURCE = """\
lm hosted = "hosted_vllm/loopback" {{ api_base: "{api_base}", temperature: 0.0, max_tokens: 64 }}

enum Category {{ billing, technical, shipping, account }}

signature Classify {{
  \"\"\"Route a customer support ticket to the team that handles it.\"\"\"
  in ticket: str "the customer's message"
  out category: Category
}}

module Router(ticket: str) -> (category: Category) {{
  c = predict Classify(ticket = ticket)
  return (category = c.category)
}}

dataset tickets = jsonl "tickets.jsonl" {{
  inputs: [ticket]
  split: train 0.2, val 0.4, test 0.4, seed 7
}}

metric accuracy = exact_match(category)

optimize Router with accuracy on tickets {{
  lm: hosted
  mipro_v2(auto = none, num_candidates = 4, num_trials = {trials}, minibatch_size = 35,
           minibatch_full_eval_steps = 8, parallel_trials = 4, seed = 9)
}}
"""


def write_project(folder: Path, api_base: str, trials: int, rows: int) -> Path:
    lines = (ROOT / "examples" / "data" / "classify.jsonl").read_text().splitlines()[:rows]
    with (folder / "tickets.jsonl").open("w") as out:
        for row in map(json.loads, lines):
            out.write(json.dumps({"ticket": row["text"], "category": row["category"]}) + "\n")
    source = folder / "router.lmp"
    source.write_text(SOURCE.format(api_base=api_base, trials=trials))
    return source


def build(source: Path, env: dict[str, str], threads: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lmpc", "build", str(source), "--quiet",
                             "--json", "--threads", str(threads), "--study", STUDY, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def trial_span(storage: str) -> dict[str, Any]:
    """Trials, their span and throughput, and how many units each process ran."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=f"{STUDY}.0.mipro_v2", storage=storage)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    trials = [t for t in done if t.user_attrs["unit"]["kind"] == "trial"]
    start = min(t.user_attrs["ran"][0] for t in trials)
    end = max(t.user_attrs["ran"][1] for t in trials)
    units = {k: sum(1 for t in done if t.user_attrs["unit"]["kind"] == k)
             for k in ("space", "baseline", "trial", "full")}
    timeline = sorted([t.user_attrs["unit"]["kind"], t.user_attrs["unit"]["n"],
                       round(t.user_attrs["ran"][0] - start, 2),
                       round(t.user_attrs["ran"][1] - start, 2),
                       round(t.datetime_start.timestamp() - start, 2)] for t in done)
    return {"trials": len(trials), "span_s": round(end - start, 2), "timeline": timeline,
            "trials_per_s": round(len(trials) / (end - start), 3), "units": units,
            "pruned": sum(1 for t in study.get_trials(deepcopy=False)
                          if t.state.name == "PRUNED"),
            "failed": sum(1 for t in study.get_trials(deepcopy=False)
                          if t.state.name == "FAIL")}


def point(cluster: str, folder: Path, source: Path, workers: int,
          threads: int, cache: bool) -> dict[str, Any]:
    storage = fresh_database(cluster, f"w{workers}")
    base = {**{k: v for k, v in os.environ.items() if k != "LMPC_CACHE_URL"},
            "LMPC_TRUST_FILE": "/nonexistent", "PYTHONPATH": str(ROOT)}
    if cache:
        base["LMPC_CACHE_URL"] = storage
    flags = () if cache else ("--no-cache",)
    out = folder / f"artifact_{workers}.json"
    started = time.monotonic()
    procs = [build(source, {**base, "LMPC_CACHE_DIR": str(folder / f"m{workers}_{i}")},
                   threads, "--worker", "--storage", storage, *flags)
             for i in range(workers - 1)]
    finisher = build(source, {**base, "LMPC_CACHE_DIR": str(folder / f"m{workers}_f")},
                     threads, "--storage", storage, "-o", str(out), *flags)
    for p in [*procs, finisher]:
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(f"a build failed:\n{err[-3000:]}")
    wall = time.monotonic() - started
    return {"workers": workers, "threads_each": threads, "wall_s": round(wall, 2),
            **trial_span(storage), "artifact": str(out)}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """JSON paths where two artifacts differ (first 20)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{path}.{k}")
        return out[:20]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")][:20]
    return [] if a == b else [path or "."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--cache", action="store_true",
                        help="share an LM cache in the database (default: no cache)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed_workers.json")
    args = parser.parse_args()
    if args.cache and args.out.name == "distributed_workers.json":
        args.out = args.out.with_name("distributed_workers_cache.json")
    counts = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()
    points = []
    with tempfile.TemporaryDirectory(prefix="lmpc-dist-") as tmp, \
            postgres_cluster() as cluster, loopback_server(args.delay, vary=True) as server:
        folder = Path(tmp)
        source = write_project(folder, server.api_base, args.trials, args.rows)
        for n in counts:
            server.reset()
            result = point(cluster, folder, source, n, args.threads, args.cache)
            result["server"] = server.stats()
            points.append(result)
            print(f"{n} worker(s): {result['trials']} trials in {result['span_s']} s = "
                  f"{result['trials_per_s']} trials/s (wall {result['wall_s']} s, "
                  f"{result['server']['requests']} requests, peak in flight "
                  f"{result['server']['peak_in_flight']})", flush=True)
        texts = {p["workers"]: Path(p["artifact"]).read_bytes() for p in points}
        first = counts[0]
        identity = {str(n): {"identical": texts[n] == texts[first],
                             "differences": differences(json.loads(texts[first]),
                                                        json.loads(texts[n]))}
                    for n in counts[1:]}
        best = json.loads(texts[first])["passes"][0]["report"].get("best")
    one = next(p for p in points if p["workers"] == 1) if 1 in counts else None
    ratios = {str(p["workers"]): round(p["trials_per_s"] / one["trials_per_s"], 2)
              for p in points} if one else {}
    for p in points:
        p.pop("artifact")
    result = {
        "benchmark": "distributed_workers", "delay_s": args.delay, "trials": args.trials,
        "threads_each": args.threads, "rows": args.rows, "cache": args.cache,
        "points": points,
        "throughput_vs_one_worker": ratios, "artifact_identity_vs_first": identity,
        "best": best, "cpus": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"throughput_vs_one_worker": ratios, "identity": identity,
                      "load": [load_before, os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
