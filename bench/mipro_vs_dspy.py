"""MIPROv2 light, lmpc vs DSPy 3.4.1: the same task, model, splits and settings.

- lmpc: a temporary variant of the .lmp file whose ``optimize`` block runs only
  ``mipro_v2(auto = light, ...)`` is built with ``lmpc build --json`` in a subprocess
  with a fresh cache (every LM call really made); the embedded model runs in-process.
  Its dry-run projection (``lmpc build --dry-run --json``) is recorded first, so the
  estimate can be compared with the calls actually made.
- DSPy: ``dspy.MIPROv2(auto="light")`` with the same demo maxima and seed, on the same
  model served by ``python -m llama_cpp.server`` on loopback (text completion, the
  ChatAdapter), on the very train/val/test rows lmpc uses, scored with lmpc's metric.

Both sides report test accuracy before → after, LM calls, tokens and wall time.

Run from the repo root:

    python bench/mipro_vs_dspy.py [--threads 1] [--limit N] [--skip-dspy]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _dspy_side import (  # noqa: E402
    DSPySettings,
    Task,
    configure,
    demo_count,
    evaluate,
    make_metric,
    make_signature,
    measure,
    to_examples,
)
from _server import gguf_path, llama_server  # noqa: E402
from fewshot_vs_dspy import (  # noqa: E402
    BUILD_TIMEOUT_S,
    DEFAULT_LMP,
    REPO,
    _check_splits,
    build_task,
    compare,
    dspy_temperature,
    load_program,
    table,
    variant_source,
)

log = logging.getLogger("lmpc.bench")
DEFAULT_OUT = REPO / "bench" / "results" / "mipro_vs_dspy.json"
NAME = "mipro_v2"
SEED = 9


def pass_line(demos: int) -> str:
    return (f"mipro_v2(auto = light, max_bootstrapped_demos = {demos}, "
            f"max_labeled_demos = {demos}, seed = {SEED})")


def run_lmpc(source: Path, demos: int, threads: int, workdir: Path) -> dict[str, Any]:
    """Dry run (the projection), then ``lmpc build --json`` with a fresh cache."""
    variant = workdir / f"{NAME}.lmp"
    variant.write_text(variant_source(source.read_text(encoding="utf-8"),
                                      source.resolve().parent, pass_line(demos)),
                       encoding="utf-8")
    cache, artifact = workdir / "cache", workdir / f"{NAME}.json"
    base = [sys.executable, "-c", "from lmpc.cli import main; main()", "build", str(variant),
            "--json", "--quiet", "--cache-dir", str(cache), "--threads", str(threads),
            "-o", str(artifact)]
    env = {**os.environ, "LMPC_CACHE_DIR": str(cache)}
    dry = _run(base + ["--dry-run"], env, workdir)
    log.info("lmpc: building with %s", NAME)
    started = time.monotonic()
    summary = _run(base, env, workdir)
    wall = time.monotonic() - started
    built = json.loads(artifact.read_text())
    record = built["passes"][0]
    return {"summary": summary, "pass_usage": record["usage"],
            "process_seconds": round(wall, 2), "dry_run": dry,
            "projected_calls": (record.get("report") or {}).get("projected_calls")}


def _run(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env=env, cwd=cwd)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command[3:])} failed with {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_dspy(task: Task, settings: DSPySettings, demos: int) -> dict[str, Any]:
    """Zero-shot test, MIPROv2 light compile (on lmpc's train and val), final test."""
    import dspy

    configure(settings)
    metric = make_metric(task)
    train, val, test = (to_examples(task, task.splits[s]) for s in ("train", "val", "test"))
    student = dspy.Predict(make_signature(task))
    before = evaluate(student, test, metric, settings.threads)
    optimizer = dspy.MIPROv2(metric=metric, auto="light", num_threads=settings.threads,
                             max_bootstrapped_demos=demos, max_labeled_demos=demos,
                             seed=SEED, verbose=False)
    log.info("DSPy: compiling with MIPROv2 light")
    built = measure(lambda: optimizer.compile(student.deepcopy(), trainset=train, valset=val))
    after = evaluate(built.value, test, metric, settings.threads)
    return {
        "zero_shot": {"test": before.value, **before.usage.as_dict()},
        "optimizers": {NAME: {
            "test_before": before.value, "test_after": after.value,
            "demos": demo_count(built.value),
            "compile": built.usage.as_dict(), "evaluate_test": after.usage.as_dict(),
        }},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmp", type=Path, default=DEFAULT_LMP)
    parser.add_argument("--demos", type=int, default=4,
                        help="max_bootstrapped_demos and max_labeled_demos (both sides)")
    parser.add_argument("--threads", type=int, default=1, help="parallel runs, both sides")
    parser.add_argument("--dspy-max-tokens", type=int, default=16)
    parser.add_argument("--limit", type=int, help="DSPy side only: first N rows per split")
    parser.add_argument("--skip-lmpc", action="store_true")
    parser.add_argument("--skip-dspy", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    program = load_program(args.lmp)
    task = build_task(program)
    sizes = {name: len(rows) for name, rows in task.splits.items()}
    ours = None
    if not args.skip_lmpc:
        with tempfile.TemporaryDirectory(prefix="bench_mipro_") as tmp:
            ours = run_lmpc(args.lmp, args.demos, args.threads, Path(tmp))
        _check_splits(ours["summary"]["splits"], sizes)
    theirs: dict[str, Any] = {}
    if not args.skip_dspy:
        if args.limit:
            task.splits = {k: v[: args.limit] for k, v in task.splits.items()}
        with llama_server(gguf_path(), n_ctx=2048) as server:
            settings = DSPySettings(api_base=server.api_base, model=server.model_alias,
                                    max_tokens=args.dspy_max_tokens,
                                    temperature=dspy_temperature(program),
                                    threads=args.threads, num_candidates=6)
            theirs = run_dspy(task, settings, args.demos)
    row = compare(NAME, ours, theirs.get("optimizers", {}).get(NAME), theirs.get("zero_shot"))
    if ours is not None:
        made = ours["pass_usage"].get("lm_requests")
        row["lmpc_projection"] = {"projected_calls": ours["projected_calls"],
                                  "pass_calls": made, "dry_run": ours["dry_run"]}
    print(table([row]))
    if ours is not None and ours["projected_calls"]:
        print(f"projected {ours['projected_calls']} LM calls for mipro_v2; made "
              f"{row['lmpc_projection']['pass_calls']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"splits": sizes, "row": row, "dspy": theirs},
                                   indent=2, default=str) + "\n", encoding="utf-8")
    log.info("results written to %s", args.out)


if __name__ == "__main__":
    main()
