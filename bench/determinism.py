"""What exact prompt evaluation costs, and what it fixes: this tree against an earlier one.

``--before REV`` (default: the commit before the fix) is unpacked with ``git archive``
into a temporary folder; every workload then runs once on each side, before first, in
fresh processes with fresh caches, one after the other so that machine load hits both
alike. Per workload and side: wall seconds, CPU seconds of the child process (user + sys,
all llama.cpp threads; robust to other people's load), LM calls and scores. The load
average is recorded before and after.

Workloads:
- ``classify``: the quick start, ``lmpc build examples/classify.lmp`` from an empty cache.
- ``order``: the issue's reproduction, with each side's own classify artifact:
  ``lmpc run`` over the 200 tickets in file order and in reverse order (one thread,
  fresh cache each); counts the tickets whose reply differs.
- ``rag``, ``agent``: builds of the other held-in examples from an empty cache.
  (``pipeline`` runs MIPROv2 with ~3,400 calls; too long for this machine.)

Run: python bench/determinism.py [--before REV] [--workloads classify,order,rag,agent]
Writes bench/results/determinism.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "cfdf672"  # main just before the exact prompt evaluation landed
RESULTS = ROOT / "bench" / "results" / "determinism.json"


def unpack(rev: str, into: Path) -> Path:
    """The tree of ``rev`` under ``into`` (no worktree, nothing left in the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def lmpc(tree: Path, *args: str, stdout: Path | None = None) -> dict[str, Any]:
    """Run ``lmpc ARGS`` with ``tree`` first on the path; wall and child CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stdout or os.devnull, "w") as out:
        done = subprocess.run([sys.executable, "-c", "from lmpc.cli import main; main()", *args],
                              cwd=tree, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"lmpc {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def build(tree: Path, example: str, work: Path) -> dict[str, Any]:
    artifact, summary = work / f"{example}.json", work / f"{example}.summary.json"
    timing = lmpc(tree, "build", f"examples/{example}.lmp", "--json", "--quiet",
                  "--threads=4",
                  "-o", str(artifact), "--cache-dir", str(work / f"cache-{example}"),
                  stdout=summary)
    result = json.loads(summary.read_text().strip().splitlines()[-1])
    return {**timing, "lm_calls": result["lm_calls"], "scores": result["scores"],
            "artifact": str(artifact)}


def order(tree: Path, work: Path, artifact: str) -> dict[str, Any]:
    rows = [json.loads(line) for line in (ROOT / "examples/data/classify.jsonl").open()]
    replies = {}
    for name, ordered in (("forward", rows), ("reverse", rows[::-1])):
        inputs, out = work / f"rows-{name}.jsonl", work / f"out-{name}.jsonl"
        inputs.write_text("".join(json.dumps({"ticket": r["text"]}) + "\n" for r in ordered))
        lmpc(tree, "run", artifact, "--input-file", str(inputs), "--threads", "1",
             "--cache-dir", str(work / f"cache-run-{name}"), stdout=out)
        replies[name] = [json.loads(line) for line in out.read_text().splitlines()]
    forward, reverse = replies["forward"], replies["reverse"][::-1]
    differ = [i for i, (a, b) in enumerate(zip(forward, reverse, strict=True)) if a != b]
    return {"tickets": len(rows), "differing_rows": differ,
            "differing_replies": [[forward[i], reverse[i]] for i in differ]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--workloads", default="classify,order,rag,agent")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    report: dict[str, Any] = {"before": args.before, "load_before": os.getloadavg(),
                              "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="lmpc-determinism-") as tmp:
        trees = {"before": unpack(args.before, Path(tmp) / "before"), "after": ROOT}
        artifacts: dict[str, str] = {}
        for workload in workloads:
            sides = {}
            for side, tree in trees.items():
                work = Path(tmp) / side
                work.mkdir(exist_ok=True)
                if workload == "order":
                    artifact = artifacts.get(side) or build(tree, "classify", work)["artifact"]
                    sides[side] = order(tree, work, artifact)
                else:
                    sides[side] = build(tree, workload, work)
                    if workload == "classify":
                        artifacts[side] = sides[side].pop("artifact")
                    else:
                        sides[side].pop("artifact")
                print(workload, side, json.dumps(sides[side]), file=sys.stderr, flush=True)
            report["workloads"][workload] = sides
    report["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
