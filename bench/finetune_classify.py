"""Weight optimization on the main demo (issue 15): the ticket router of
``examples/classify.lmp`` with ``knn_fewshot(k = 4)`` (demos per input), with
``bootstrap_finetune`` after it (zero-shot, on a LoRA trained here), and with
``better_together`` (``examples/finetune.lmp``), in one run on the embedded model.

Each build runs in its own subprocess (the training's torch memory goes with it), in
the order knn, tuned, together, each with a fresh cache (every LM call is made, every
adapter trained). Per build:

- val and test accuracy after the build (the artifact's scores);
- prompt tokens per call of the built program: the prompt tokens of its final
  evaluation on val and test divided by its calls (llama.cpp's count of the prompt, BOS
  included; a cache hit counts none, so only new calls are counted) — the cost of every
  call the program will make;
- the training time (wall and CPU, from the pass's own progress events), the records
  and steps, and the size of what is stored (artifact + adapter);
- for better_together, every step's val score.

Run from the repo root (about 25 min on 2 busy cores):

    nice -n 10 python bench/finetune_classify.py [--out bench/results/finetune_classify.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "finetune_classify.json"
BUILDS = {  # name -> (.lmp file, optimize block or None for the file's only one)
    "knn": ("examples/classify.lmp", None),
    "tuned": ("examples/finetune.lmp", "tuned"),
    "together": ("examples/finetune.lmp", "together"),
}
BUILD_TIMEOUT_S = 3600


def build_here(name: str, cache_dir: str, out_dir: str) -> dict[str, Any]:
    """Build ``name`` in this process; what the table needs, as a dict."""
    from lmpc.api import BuildError, _block, _source
    from lmpc.compiler.build import build_one
    from lmpc.compiler.passes.base import Progress
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.lm import LitellmTransport, LMClient

    lmp, block_name = BUILDS[name]
    path = REPO / lmp
    ir = _source(path, BuildError)
    index, block = _block(ir, None, block_name, path)
    client = LMClient(LitellmTransport(), cache=SQLiteCache(Path(cache_dir) / "cache.sqlite"))
    out = Path(out_dir) / f"{name}.json"
    trained: list[str] = []
    reused: list[bool] = []

    def progress(event: Any) -> None:
        if isinstance(event, Progress) and event.stage == "train" and event.finished:
            trained.append(event.label)
            reused.append("reused" in event.label)

    started = time.monotonic()
    summary = build_one(ir, index, block, client=client, out=out, seed=None, lm_name=None,
                        threads=None, progress=progress)
    seconds = time.monotonic() - started
    after = client.usage.by("eval").get("after", {})
    calls = after.get("calls", 0)  # new calls: a cache hit counts no tokens
    artifact = json.loads(out.read_text(encoding="utf-8"))
    weights = out.parent / f"{out.stem}.weights"
    adapter_bytes = sum(f.stat().st_size for f in weights.glob("*.gguf")) \
        if weights.is_dir() else 0
    row: dict[str, Any] = {
        "build": name, "file": lmp, "optimize": block_name,
        "val": summary["scores"].get("val", {}).get("after"),
        "test": summary["scores"].get("test", {}).get("after"),
        "val_before": summary["scores"].get("val", {}).get("before"),
        "test_before": summary["scores"].get("test", {}).get("before"),
        "eval_calls": calls,
        "prompt_tokens_per_call": round(after.get("prompt_tokens", 0) / calls, 1)
        if calls else None,
        "build_lm_calls": summary["lm_calls"],
        "build_seconds": round(seconds, 1),
        "artifact_bytes": out.stat().st_size,
        "adapter_bytes": adapter_bytes,
        "adapter_sha256": [lm["tuned"]["adapter"]["sha256"] for lm in artifact["ir"]["lms"].values()
                           if lm.get("tuned") and lm["tuned"].get("adapter")],
        "training": [_seconds(label) for label in trained],
        "adapter_reused": reused,
    }
    for record in artifact["passes"]:
        report = record.get("report", {})
        if record["name"] == "bootstrap_finetune":
            row["records"] = report.get("records")
            row["steps"] = [t.get("steps") for t in report.get("tuned", [])]
        if record["name"] == "better_together":
            row["steps_val"] = [{"step": s.get("kind"), "pass": s.get("pass"),
                                 "val": s.get("score")} for s in report.get("steps", [])]
            row["best_step"] = report.get("best_step")
            row["records"] = [s.get("report", {}).get("records") for s in
                              report.get("steps", []) if s.get("kind") == "w"]
    return row


def _seconds(label: str) -> dict[str, Any]:
    match = re.search(r"trained in (\d+)s \((\d+)s CPU\)", label)
    if not match:
        return {"label": label}
    return {"wall_s": int(match.group(1)), "cpu_s": int(match.group(2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", action="append", choices=sorted(BUILDS))
    parser.add_argument("--one", choices=sorted(BUILDS), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: one build, its row on stdout
        print(json.dumps(build_here(args.one, args.cache_dir, args.out_dir)))
        return
    rows = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="lmpc-bench-ft-") as tmp:
        for name in args.only or list(BUILDS):
            cache = Path(tmp) / name
            cache.mkdir(exist_ok=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--one", name, "--cache-dir", str(cache),
                 "--out-dir", tmp], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
            if proc.returncode != 0:
                sys.exit(f"{name}: build failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            load.append(os.getloadavg()[0])
            print(json.dumps(rows[-1]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_average_1min": load, "builds": rows}
    by = {r["build"]: r for r in rows}
    if "knn" in by and "tuned" in by and by["tuned"]["prompt_tokens_per_call"]:
        result["token_ratio_knn_over_tuned"] = round(
            by["knn"]["prompt_tokens_per_call"] / by["tuned"]["prompt_tokens_per_call"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "builds"}))


if __name__ == "__main__":
    main()
