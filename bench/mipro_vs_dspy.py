"""MIPROv2 light, lmpc vs DSPy 3.4.1: the same task, model, splits and settings.

- The benchmark writes a variant of the .lmp file whose ``optimize`` block runs only
  ``mipro_v2(auto = light, ...)`` and whose split may be shrunk (``--val``/``--test``);
  both sides read their rows from that variant, so they see the very same examples.
- lmpc: ``lmpc build --dry-run --json`` first (the projection), then ``lmpc build
  --json`` in a subprocess with a fresh cache (every LM call really made); the embedded
  model runs in-process. The pass's projected calls are compared with the calls made.
- DSPy: ``dspy.MIPROv2(auto="light")`` with the same demo maxima, minibatch size and
  seed, on the same model served by ``python -m llama_cpp.server`` on loopback (text
  completion, the ChatAdapter), scored with lmpc's metric. ``--dspy-trials N`` switches
  DSPy to ``auto=None`` with light's 6 candidates and N trials (when light's own trial
  count cannot fit the time available); the JSON records what was run.

Both sides report test accuracy before → after, LM calls, tokens and wall time.

Run from the repo root:

    python bench/mipro_vs_dspy.py --val 40 --test 40 --demos 2 --threads 2
    python bench/mipro_vs_dspy.py --train 8 --val 6 --test 4 --minibatch-size 4  # quick check
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
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
from _server import OPENMP_ENV, gguf_path, llama_server  # noqa: E402
from fewshot_vs_dspy import (  # noqa: E402
    BUILD_TIMEOUT_S,
    DEFAULT_LMP,
    MAX_ERRORS,
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
LIGHT_CANDIDATES = 6  # DSPy's and lmpc's light preset
SPLIT_RE = re.compile(r"split:\s*train\s+(\d+)\s*,\s*val\s+(\d+)\s*,\s*test\s+(\d+)")


def pass_line(demos: int, minibatch_size: int, light_as_manual: bool) -> str:
    """The lmpc pass; ``light_as_manual`` spells light's preset out as ``auto = none``
    (the same 6 candidates and trials; light's valset cap of 100 does not bind here)."""
    from lmpc.compiler.passes.mipro_v2 import num_trials_for

    search = "auto = light"
    if light_as_manual:
        trials = num_trials_for(1, LIGHT_CANDIDATES, fewshot=demos > 0)
        search = f"auto = none, num_candidates = {LIGHT_CANDIDATES}, num_trials = {trials}"
    return (f"mipro_v2({search}, max_bootstrapped_demos = {demos}, "
            f"max_labeled_demos = {demos}, minibatch_size = {minibatch_size}, seed = {SEED})")


def write_variant(args: argparse.Namespace, workdir: Path) -> Path:
    """The one-pass variant of ``args.lmp``, its split resized as asked."""
    text = variant_source(args.lmp.read_text(encoding="utf-8"), args.lmp.resolve().parent,
                          pass_line(args.demos, args.minibatch_size,
                                    args.light_as_manual))
    text = resize_split(text, args.train, args.val, args.test)
    variant = workdir / f"{NAME}.lmp"
    variant.write_text(text, encoding="utf-8")
    return variant


def resize_split(text: str, train: int | None, val: int | None, test: int | None) -> str:
    """``text`` with its ``split: train N, val N, test N`` line resized (None: keep).

    >>> resize_split("split: train 40, val 80, test 80, seed 7", None, 40, 20)
    'split: train 40, val 40, test 20, seed 7'
    """
    match = SPLIT_RE.search(text)
    if match is None:
        sys.exit("the dataset block has no `split: train N, val N, test N` line")
    new = [str(n if n is not None else int(old))
           for n, old in zip((train, val, test), match.groups(), strict=True)]
    return (text[:match.start()] + f"split: train {new[0]}, val {new[1]}, test {new[2]}"
            + text[match.end():])


def run_lmpc(variant: Path, threads: int, workdir: Path, data: Path) -> dict[str, Any]:
    """Dry run (the projection), then ``lmpc build --json`` with a fresh cache.

    ``data``: the example's folder, which the variant (in a temporary folder) reads.
    """
    return run_lmpc_build(variant, threads, workdir, data, NAME, trial_facts)


def trial_facts(report: dict[str, Any]) -> dict[str, Any]:
    """What MIPROv2's report says: its projection, settings and how many trials ran."""
    return {"pass_projected_calls": report.get("projected_calls"),
            "pass_settings": report.get("settings"),
            "trials": len(report.get("trials") or [])}


def run_lmpc_build(variant: Path, threads: int, workdir: Path, data: Path, name: str,
                   facts: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """The dry run and the build of one variant whose one pass is ``name``; ``facts``
    picks from the pass's report what a benchmark keeps (MIPROv2's and GEPA's share this)."""
    cache, artifact = workdir / "cache", workdir / f"{name}.json"
    base = [sys.executable, "-c", "from lmpc.cli import main; main()", "build", str(variant),
            "--json", "--quiet", "--cache-dir", str(cache), "--threads", str(threads),
            "-o", str(artifact), "--allow-path", str(data)]
    env = {**os.environ, **OPENMP_ENV, "LMPC_CACHE_DIR": str(cache)}
    dry = _run(base + ["--dry-run"], env, workdir)
    steps = {step["step"]: step["calls"] for step in dry.get("steps", [])}
    log.info("lmpc: dry run projects %s LM calls (%s for %s); building",
             dry.get("projected_lm_calls"), steps.get(name), name)
    started = time.monotonic()
    summary = _run(base, env, workdir)
    wall = time.monotonic() - started
    record = json.loads(artifact.read_text())["passes"][0]
    return {"summary": summary, "pass_usage": record["usage"],
            "process_seconds": round(wall, 2), "dry_run": dry,
            "dry_run_pass_calls": steps.get(name), **facts(record.get("report") or {})}


def _run(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env=env, cwd=cwd)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command[3:])} failed with {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def writer_adapter() -> Any:
    """The ChatAdapter, except that a reply to a *writing* signature (one free-text
    output: DSPy's proposer, program and dataset describers) that lacks the output
    header is taken whole as that output. DSPy's proposer does not catch parse errors,
    so on this base model MIPROv2 otherwise dies in its first instruction proposal; lmpc's
    proposer takes the completion text too. Task predictions (an enum output) still
    have to parse. ``adapter.fallbacks`` counts the replies taken whole."""
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    class WriterAdapter(dspy.ChatAdapter):
        fallbacks = 0

        def parse(self, signature: Any, completion: str) -> dict[str, Any]:
            try:
                return super().parse(signature, completion)
            except AdapterParseError:
                outputs = list(signature.output_fields.items())
                if len(outputs) != 1 or outputs[0][1].annotation is not str:
                    raise
                type(self).fallbacks += 1
                return {outputs[0][0]: completion.strip()}

    return WriterAdapter(use_json_adapter_fallback=False)


def dspy_optimizer(metric: Any, settings: DSPySettings, demos: int,
                   trials: int | None) -> Any:
    """MIPROv2 light, or (``trials``) light's candidates with fewer trials.

    The prompt model is the task model with lmpc's writer room (``max_tokens`` raised
    to ``WRITER_MAX_TOKENS``, as lmpc's proposer does for a model set up for labels)."""
    import dspy

    from lmpc.compiler.passes._propose import WRITER_MAX_TOKENS

    task_lm = dspy.settings.lm
    prompt_lm = task_lm.copy(max_tokens=max(WRITER_MAX_TOKENS, settings.max_tokens))
    auto = {"auto": "light"} if trials is None else {
        "auto": None, "num_candidates": LIGHT_CANDIDATES}
    # max_errors: DSPy's default (10) aborts on this model's unparsed replies; lmpc
    # never aborts on a failed example, so DSPy gets the same tolerance.
    return dspy.MIPROv2(metric=metric, prompt_model=prompt_lm, task_model=task_lm,
                        num_threads=settings.threads, max_bootstrapped_demos=demos,
                        max_labeled_demos=demos, seed=SEED, max_errors=MAX_ERRORS,
                        verbose=False, **auto)


def run_dspy(task: Task, settings: DSPySettings, demos: int, minibatch_size: int,
             trials: int | None) -> dict[str, Any]:
    """Zero-shot test, MIPROv2 compile (on lmpc's train and val), final test."""
    import dspy

    configure(settings)
    adapter = writer_adapter()
    dspy.configure(adapter=adapter)
    metric = make_metric(task)
    train, val, test = (to_examples(task, task.splits[s]) for s in ("train", "val", "test"))
    student = dspy.Predict(make_signature(task))
    log.info("DSPy: zero-shot on %d test examples", len(test))
    before = evaluate(student, test, metric, settings.threads)
    optimizer = dspy_optimizer(metric, settings, demos, trials)
    extra = {} if trials is None else {"num_trials": trials}
    log.info("DSPy: compiling with MIPROv2 (%s)", "light" if trials is None else extra)
    built = measure(lambda: optimizer.compile(student.deepcopy(), trainset=train, valset=val,
                                              minibatch_size=minibatch_size, **extra))
    log.info("DSPy: compiled (%d calls, %.0fs); evaluating", built.usage.calls,
             built.usage.seconds)
    after = evaluate(built.value, test, metric, settings.threads)
    return {
        "zero_shot": {"test": before.value, **before.usage.as_dict()},
        "optimizers": {NAME: {
            "test_before": before.value, "test_after": after.value,
            "demos": demo_count(built.value),
            "best_val_score": getattr(built.value, "score", None),
            "trial_logs": len(getattr(built.value, "trial_logs", None) or {}),
            "compile": built.usage.as_dict(), "evaluate_test": after.usage.as_dict(),
        }},
        "writer_fallbacks": adapter.fallbacks,
        "mode": "auto=light" if trials is None
        else f"auto=None, num_candidates={LIGHT_CANDIDATES}, num_trials={trials}",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmp", type=Path, default=DEFAULT_LMP)
    parser.add_argument("--train", type=int, help="train rows (both sides; default: the file's)")
    parser.add_argument("--val", type=int, help="val rows (both sides; default: the file's)")
    parser.add_argument("--test", type=int, help="test rows (both sides; default: the file's)")
    parser.add_argument("--demos", type=int, default=4,
                        help="max_bootstrapped_demos and max_labeled_demos (both sides)")
    parser.add_argument("--minibatch-size", type=int, default=35, help="both sides")
    parser.add_argument("--light-as-manual", action="store_true",
                        help="lmpc: write light's preset as auto = none + its 6 candidates "
                             "and trials (a workaround while auto = light fails to build)")
    parser.add_argument("--threads", type=int, default=1, help="parallel runs, both sides")
    parser.add_argument("--dspy-max-tokens", type=int, default=16)
    parser.add_argument("--dspy-trials", type=int,
                        help="DSPy only: auto=None, 6 candidates, this many trials")
    parser.add_argument("--skip-lmpc", action="store_true")
    parser.add_argument("--skip-dspy", action="store_true")
    parser.add_argument("--reuse", type=Path, help="an earlier results JSON: keep its lmpc side")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args()


def main() -> None:
    # a plain `kill` still runs the finally blocks (the server is stopped)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    logging.getLogger("dspy").setLevel(logging.ERROR)  # one truncation warning per call
    with tempfile.TemporaryDirectory(prefix="bench_mipro_") as tmp:
        variant = write_variant(args, Path(tmp))
        program = load_program(variant)
        task = build_task(program)
        sizes = {name: len(rows) for name, rows in task.splits.items()}
        log.info("splits %s", sizes)
        ours = json.loads(args.reuse.read_text())["lmpc_raw"] if args.reuse else None
        timing: dict[str, Any] = {}
        if not args.skip_lmpc:
            timing["lmpc_start"] = time.strftime("%H:%M:%S")
            ours = run_lmpc(variant, args.threads, Path(tmp), args.lmp.resolve().parent)
            timing["lmpc_end"] = time.strftime("%H:%M:%S")
            timing["load_after_lmpc"] = os.getloadavg()
            _check_splits(ours["summary"]["splits"], sizes)
            write_results(args, sizes, ours, {}, None, timing)  # partial results survive
    theirs: dict[str, Any] = {}
    settings = None
    if not args.skip_dspy:
        timing["dspy_start"] = time.strftime("%H:%M:%S")
        with llama_server(gguf_path(), n_ctx=2048) as server:
            settings = DSPySettings(api_base=server.api_base, model=server.model_alias,
                                    max_tokens=args.dspy_max_tokens,
                                    temperature=dspy_temperature(program),
                                    threads=args.threads, num_candidates=LIGHT_CANDIDATES)
            theirs = run_dspy(task, settings, args.demos, args.minibatch_size,
                              args.dspy_trials)
            theirs["server_completions"] = server.log_path.read_text(
                errors="replace").count("POST /v1/completions")
        timing["dspy_end"] = time.strftime("%H:%M:%S")
    write_results(args, sizes, ours, theirs, settings, timing)


def projection(ours: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """The dry run's projected new LM calls against the new calls made (cold cache).

    The build's count is exact. The pass's new calls are the build's, less the cold
    before-evaluation (val + test) and the after-evaluation's test rows (its val rows
    are cached by the search's full evaluations). ``pass_requests`` is the artifact's
    work count, cache hits included, so it is not comparable with the projection."""
    built = int(ours["summary"]["lm_calls"])
    pass_new = built - sizes["val"] - 2 * sizes["test"]
    dry_build, dry_pass = ours["dry_run"].get("projected_lm_calls"), ours["dry_run_pass_calls"]
    return {
        "dry_run_build_calls": dry_build, "build_calls_made": built,
        "build_error": round((dry_build - built) / built, 3),
        "dry_run_pass_calls": dry_pass, "pass_new_calls": pass_new,
        "pass_error": round((dry_pass - pass_new) / pass_new, 3),
        "pass_report_projected": ours["pass_projected_calls"],
        "pass_requests": ours["pass_usage"].get("lm_requests"),
    }


def write_results(args: argparse.Namespace, sizes: dict[str, int], ours: dict[str, Any] | None,
                  theirs: dict[str, Any], settings: DSPySettings | None,
                  timing: dict[str, Any]) -> None:
    import dspy

    row = compare(NAME, ours, theirs.get("optimizers", {}).get(NAME), theirs.get("zero_shot"))
    if ours is not None:
        row["lmpc_projection"] = projection(ours, sizes)
    print(table([row]), flush=True)
    if "lmpc_projection" in row:
        p = row["lmpc_projection"]
        print(f"lmpc dry run: build {p['dry_run_build_calls']} LM calls projected, "
              f"{p['build_calls_made']} made ({p['build_error']:+.1%}); mipro_v2 "
              f"{p['dry_run_pass_calls']} projected, {p['pass_new_calls']} made "
              f"({p['pass_error']:+.1%})", flush=True)
    results = {
        "task": "examples/classify.lmp" if args.lmp.resolve() == DEFAULT_LMP else str(args.lmp),
        "splits": sizes, "threads": args.threads, "demos": args.demos,
        "minibatch_size": args.minibatch_size, "seed": SEED,
        "dspy_mode": theirs.get("mode"), "lmpc_light_as_manual": args.light_as_manual,
        "timing": timing,
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(),
        "dspy_version": dspy.__version__,
        "dspy_settings": None if settings is None else {
            **asdict(settings), "api_base": "loopback",
            "adapter": "ChatAdapter(use_json_adapter_fallback=False)", "model_type": "text"},
        "dspy_zero_shot": theirs.get("zero_shot"),
        "dspy_server_completions": theirs.get("server_completions"),
        "row": row, "lmpc_raw": ours, "dspy_raw": theirs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    log.info("results written to %s", args.out)


if __name__ == "__main__":
    main()
