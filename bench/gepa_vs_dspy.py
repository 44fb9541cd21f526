"""GEPA, lmpc vs DSPy 3.4.1: the same task, model, splits, metric feedback and budget.

- The benchmark writes a variant of the .lmp file whose ``optimize`` block runs only
  ``gepa(max_metric_calls = N, ...)`` and whose split may be shrunk (``--val``/``--test``);
  both sides read their rows from that variant, so they see the very same examples.
- lmpc: ``lmpc build --dry-run --json`` first (the projection), then ``lmpc build
  --json`` in a subprocess with a fresh cache (every LM call really made); the embedded
  model runs in-process and also writes the reflections (the reflection role falls back
  to the task LM).
- DSPy: ``dspy.GEPA(max_metric_calls=N, ...)`` with the same minibatch size, merge
  setting and seed, on the same model served by ``python -m llama_cpp.server`` on
  loopback (text completion, the ChatAdapter), scored with lmpc's metric and its
  feedback text (``dspy.Prediction(score, feedback)``). Its reflection LM is the same
  served model with lmpc's writer room (``max_tokens`` 150): the only model there is.

Both sides report val and test accuracy before → after, metric calls, LM calls (the
reflections apart), tokens and wall time, and the machine's load.

Run from the repo root:

    python bench/gepa_vs_dspy.py --val 40 --test 40 --max-metric-calls 300 --threads 2
    python bench/gepa_vs_dspy.py --train 8 --val 6 --test 4 --max-metric-calls 30  # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
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
    evaluate,
    make_metric,
    make_signature,
    measure,
    to_examples,
)
from _server import gguf_path, llama_server  # noqa: E402
from fewshot_vs_dspy import (  # noqa: E402
    DEFAULT_LMP,
    REPO,
    _check_splits,
    build_task,
    dspy_temperature,
    load_program,
    variant_source,
)
from mipro_vs_dspy import resize_split, run_lmpc_build, writer_adapter  # noqa: E402

log = logging.getLogger("lmpc.bench")
DEFAULT_OUT = REPO / "bench" / "results" / "gepa_vs_dspy.json"
NAME = "gepa"
SEED = 0

Feedback = Callable[[dict[str, Any], Any], tuple[float, str]]


def pass_line(max_metric_calls: int, minibatch_size: int, use_merge: bool, seed: int) -> str:
    """The lmpc pass, with the settings DSPy's ``GEPA`` gets in ``dspy_optimizer``.

    >>> pass_line(300, 3, False, 0)
    'gepa(max_metric_calls = 300, reflection_minibatch_size = 3, use_merge = false, seed = 0)'
    """
    return (f"gepa(max_metric_calls = {max_metric_calls}, reflection_minibatch_size = "
            f"{minibatch_size}, use_merge = {str(use_merge).lower()}, seed = {seed})")


def write_variant(args: argparse.Namespace, workdir: Path) -> Path:
    """The one-pass variant of ``args.lmp``, its split resized as asked."""
    text = variant_source(args.lmp.read_text(encoding="utf-8"), args.lmp.resolve().parent,
                          pass_line(args.max_metric_calls, args.minibatch_size,
                                    args.use_merge, SEED))
    variant = workdir / f"{NAME}.lmp"
    variant.write_text(resize_split(text, args.train, args.val, args.test), encoding="utf-8")
    return variant


def feedback_of(program: Any, task: Task) -> Feedback:
    """lmpc's metric *with its feedback* on (row, predicted): what lmpc's gepa shows its
    reflection LM, handed to DSPy's GEPA unchanged."""
    from lmpc.eval.metrics import build_metric
    from lmpc.ir import Example

    optimize = program.optimizes[0]
    metric_ir = program.metrics[optimize.metric]
    metric = build_metric(metric_ir, program)
    name, output = metric_ir.field or task.output.name, task.output.name

    def feedback(row: dict[str, Any], predicted: Any) -> tuple[float, str]:
        got = metric.with_feedback(Example(inputs={}, labels={name: row[output]}),
                                   {name: predicted})
        return got.score, got.feedback

    return feedback


def gepa_metric(task: Task, feedback: Feedback) -> Callable[..., Any]:
    """DSPy GEPA's five-argument metric: ``dspy.Prediction(score=, feedback=)``; a reply
    without the output scores 0 and says so (lmpc: the run's error as the feedback)."""
    import dspy

    name = task.output.name

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
               pred_trace: Any = None) -> Any:
        got = getattr(pred, name, None)
        if got is None:
            return dspy.Prediction(score=0.0, feedback=f"the program failed: no {name}")
        score, text = feedback(gold.toDict(), got)
        return dspy.Prediction(score=score, feedback=text)

    return metric


# ---------------------------------------------------------------- lmpc's side


def run_lmpc(variant: Path, threads: int, workdir: Path, data: Path) -> dict[str, Any]:
    """Dry run (the projection), then ``lmpc build --json`` with a fresh cache."""
    return run_lmpc_build(variant, threads, workdir, data, NAME,
                          lambda report: {"pass_report": pass_facts(report)})


def pass_facts(report: dict[str, Any]) -> dict[str, Any]:
    """What the pass's report says about the search (the tree's texts left out).

    >>> r = {"metric_calls": 30, "reflections": 4, "max_metric_calls": 30,
    ...      "guard": {"asked": 12, "kept": 1}, "projected_calls": 40,
    ...      "tree": [{"val_score": 0.2}, {"val_score": 0.5}], "best": {"index": 1}}
    >>> pass_facts(r)["candidates"], pass_facts(r)["best_index"], pass_facts(r)["val_best"]
    (2, 1, 0.5)
    """
    tree = report.get("tree") or []
    return {
        "metric_calls": report.get("metric_calls"),
        "max_metric_calls": report.get("max_metric_calls"),
        "reflections": report.get("reflections"), "guard": report.get("guard"),
        "projected_calls": report.get("projected_calls"), "stopped": report.get("stopped"),
        "candidates": len(tree), "best_index": (report.get("best") or {}).get("index"),
        "val_seed": tree[0].get("val_score") if tree else None,
        "val_best": max((n.get("val_score") or 0.0 for n in tree), default=None),
    }


# ---------------------------------------------------------------- DSPy's side


def dspy_optimizer(metric: Any, settings: DSPySettings, reflection_lm: Any,
                   max_metric_calls: int, minibatch_size: int, use_merge: bool,
                   proposer_adapter: Any) -> Any:
    """DSPy's GEPA with lmpc's settings. ``proposer_adapter``: the adapter of GEPA's own
    instruction proposer (None: its default ``JSONAdapter``, whose structured-output
    request a text-completion server refuses: every reflection then fails)."""
    import dspy
    from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer

    proposer = None if proposer_adapter is None else InstructionProposer(
        adapter=proposer_adapter)
    return dspy.GEPA(metric=metric, max_metric_calls=max_metric_calls,
                     instruction_proposer=proposer,
                     reflection_minibatch_size=minibatch_size,
                     candidate_selection_strategy="pareto", reflection_lm=reflection_lm,
                     skip_perfect_score=True, use_merge=use_merge, max_merge_invocations=5,
                     # lmpc reflects on a failed run with its error as the feedback; without
                     # this DSPy has nothing to reflect on when no reply of the base model
                     # parses ("No valid predictions found for any module")
                     add_format_failure_as_feedback=True,
                     num_threads=settings.threads, failure_score=0.0, perfect_score=1.0,
                     track_stats=True, seed=SEED)


def run_dspy(task: Task, feedback: Feedback, settings: DSPySettings,
             args: argparse.Namespace) -> dict[str, Any]:
    """Zero-shot test, GEPA compile (on lmpc's train and val), final test."""
    import dspy

    from lmpc.compiler.passes._propose import WRITER_MAX_TOKENS

    task_lm = configure(settings)
    # the reflection LM: the same model, with the room lmpc's reflections get
    reflection_lm = task_lm.copy(max_tokens=max(WRITER_MAX_TOKENS, settings.max_tokens))
    metric = make_metric(task)
    train, val, test = (to_examples(task, task.splits[s]) for s in ("train", "val", "test"))
    student = dspy.Predict(make_signature(task))
    log.info("DSPy: zero-shot on %d test examples", len(test))
    before = evaluate(student, test, metric, settings.threads)
    # the mipro benchmark's lenient ChatAdapter: a reply without the output header is
    # taken whole as the new instruction (lmpc's writer takes the completion text too)
    adapter = None if args.dspy_json_proposer else writer_adapter()
    optimizer = dspy_optimizer(gepa_metric(task, feedback), settings, reflection_lm,
                               args.max_metric_calls, args.minibatch_size, args.use_merge,
                               adapter)
    log.info("DSPy: compiling with GEPA (max_metric_calls=%d)", args.max_metric_calls)
    built = measure(lambda: optimizer.compile(student.deepcopy(), trainset=train,
                                              valset=val))
    reflections = len(reflection_lm.history)
    log.info("DSPy: compiled (%d calls, %d reflections, %.0fs); evaluating",
             built.usage.calls, reflections, built.usage.seconds)
    after = evaluate(built.value, test, metric, settings.threads)
    results = getattr(built.value, "detailed_results", None)
    val_scores = list(getattr(results, "val_aggregate_scores", None) or [])
    best = getattr(results, "best_idx", None)
    return {
        "zero_shot": {"test": before.value, **before.usage.as_dict()},
        "test_before": before.value, "test_after": after.value,
        "val_seed": val_scores[0] if val_scores else None,
        "val_best": val_scores[best] if val_scores and best is not None else None,
        "candidates": len(val_scores), "best_index": best,
        "metric_calls": getattr(results, "total_metric_calls", None),
        "reflections": reflections,
        "proposer": "JSONAdapter (DSPy's default)" if adapter is None
        else "ChatAdapter, a reply without the output header taken whole",
        "writer_fallbacks": getattr(adapter, "fallbacks", None),
        "instruction": built.value.signature.instructions,
        "compile": built.usage.as_dict(), "evaluate_test": after.usage.as_dict(),
    }


# ---------------------------------------------------------------- the comparison


def side_by_side(ours: dict[str, Any] | None, theirs: dict[str, Any] | None,
                 sizes: dict[str, int]) -> dict[str, Any]:
    """Both sides' numbers on one footing.

    "search calls" are the LM calls of the pass / ``compile`` (lmpc: *new* calls, the
    build's less its cold before-evaluation of val + test and the after-evaluation's
    test rows, whose val rows the search's full evaluations cached — none when the
    search returned its seed, whose rows are all the before-evaluation's); "total" is
    all the work behind the row (lmpc's whole build; DSPy: zero-shot test, compile,
    final test).

    >>> ours = {"summary": {"scores": {"val": {"before": .2, "after": .2},
    ...     "test": {"before": .25, "after": .3}}, "lm_calls": 200, "tokens": 9000,
    ...     "seconds": 50.0}, "pass_usage": {"lm_requests": 150}, "process_seconds": 55.0,
    ...     "dry_run": {"projected_lm_calls": 210}, "dry_run_pass_calls": 110,
    ...     "pass_report": {"metric_calls": 60, "reflections": 10, "val_seed": .2,
    ...                     "val_best": .3, "best_index": 2}}
    >>> row = side_by_side(ours, None, {"train": 10, "val": 20, "test": 20})
    >>> row["lmpc"]["search_calls"], row["lmpc_projection"]["pass_error"]
    (140, -0.214)
    >>> ours["pass_report"]["best_index"] = 0  # the seed: the final evaluation is cached
    >>> side_by_side(ours, None, {"train": 10, "val": 20, "test": 20})["lmpc"]["search_calls"]
    160
    """
    row: dict[str, Any] = {}
    if ours is not None:
        summary, facts = ours["summary"], ours["pass_report"]
        built = int(summary["lm_calls"])
        after = 0 if facts.get("best_index") == 0 else sizes["test"]
        search = built - sizes["val"] - sizes["test"] - after
        row["lmpc"] = {
            "val_before": summary["scores"]["val"]["before"],
            "val_after": summary["scores"]["val"]["after"],
            "test_before": summary["scores"]["test"]["before"],
            "test_after": summary["scores"]["test"]["after"],
            "metric_calls": facts["metric_calls"], "reflections": facts["reflections"],
            "reflection_calls": (facts.get("guard") or {}).get("asked"),
            "search_calls": search, "search_requests": ours["pass_usage"]["lm_requests"],
            "total_calls": built, "total_tokens": summary["tokens"],
            "seconds": summary["seconds"], "process_seconds": ours["process_seconds"],
        }
        dry_build, dry_pass = ours["dry_run"]["projected_lm_calls"], ours["dry_run_pass_calls"]
        row["lmpc_projection"] = {
            "dry_run_build_calls": dry_build, "build_calls_made": built,
            "build_error": round((dry_build - built) / built, 3) if built else None,
            "dry_run_pass_calls": dry_pass, "pass_new_calls": search,
            "pass_error": round((dry_pass - search) / search, 3) if search else None,
        }
    if theirs is not None:
        zero, compiled, final = theirs["zero_shot"], theirs["compile"], theirs["evaluate_test"]
        row["dspy"] = {
            "val_before": theirs["val_seed"], "val_after": theirs["val_best"],
            "test_before": theirs["test_before"], "test_after": theirs["test_after"],
            "metric_calls": theirs["metric_calls"], "reflections": theirs["reflections"],
            "reflection_calls": theirs["reflections"], "search_calls": compiled["calls"],
            "search_requests": compiled["calls"],
            "total_calls": zero["calls"] + compiled["calls"] + final["calls"],
            "total_tokens": zero["tokens"] + compiled["tokens"] + final["tokens"],
            "seconds": round(zero["seconds"] + compiled["seconds"] + final["seconds"], 2),
        }
    if "lmpc" in row and "dspy" in row:
        row["ratio_lmpc_over_dspy"] = {
            key: round(row["lmpc"][key] / row["dspy"][key], 3) if row["dspy"][key] else None
            for key in ("search_calls", "total_calls", "total_tokens", "seconds")}
    return row


def table(row: dict[str, Any]) -> str:
    head = (f"{'side':<6}{'val acc':>16}{'test acc':>16}{'metric':>8}{'reflect':>9}"
            f"{'search':>8}{'calls':>7}{'tokens':>9}{'seconds':>9}")
    lines = [head, "-" * len(head)]
    for side in ("lmpc", "dspy"):
        r = row.get(side)
        if r is None:
            continue
        lines.append(
            f"{side:<6}{_pct(r['val_before']) + ' → ' + _pct(r['val_after']):>16}"
            f"{_pct(r['test_before']) + ' → ' + _pct(r['test_after']):>16}"
            f"{r['metric_calls'] or '-':>8}{r['reflection_calls'] or 0:>9}{r['search_calls']:>8}"
            f"{r['total_calls']:>7}{r['total_tokens']:>9}{r['seconds']:>9.1f}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmp", type=Path, default=DEFAULT_LMP)
    parser.add_argument("--train", type=int, help="train rows (both sides; default: the file's)")
    parser.add_argument("--val", type=int, help="val rows (both sides; default: the file's)")
    parser.add_argument("--test", type=int, help="test rows (both sides; default: the file's)")
    parser.add_argument("--max-metric-calls", type=int, default=300, help="both sides")
    parser.add_argument("--minibatch-size", type=int, default=3,
                        help="reflection_minibatch_size (both sides)")
    parser.add_argument("--use-merge", action="store_true", help="merges on (both sides)")
    parser.add_argument("--threads", type=int, default=2, help="parallel runs, both sides")
    parser.add_argument("--dspy-max-tokens", type=int, default=16)
    parser.add_argument("--dspy-json-proposer", action="store_true",
                        help="DSPy: GEPA's default proposer (JSONAdapter), which the "
                             "text-completion server refuses")
    parser.add_argument("--skip-lmpc", action="store_true")
    parser.add_argument("--skip-dspy", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rescore", type=Path, metavar="JSON",
                        help="run nothing: recompute the table of an earlier results file")
    return parser.parse_args()


def main() -> None:
    # a plain `kill` still runs the finally blocks (the server is stopped)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.rescore:
        earlier = json.loads(args.rescore.read_text(encoding="utf-8"))
        earlier["row"] = side_by_side(earlier["lmpc_raw"], earlier["dspy_raw"],
                                      earlier["splits"])
        print(table(earlier["row"]))
        args.out.write_text(json.dumps(earlier, indent=2, default=str) + "\n",
                            encoding="utf-8")
        return
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    for name in ("dspy", "gepa"):  # one truncation warning per call, a line per iteration
        logging.getLogger(name).setLevel(logging.ERROR)
    timing: dict[str, Any] = {"load_at_start": os.getloadavg()}
    ours: dict[str, Any] | None = None
    theirs: dict[str, Any] | None = None
    settings = None
    with tempfile.TemporaryDirectory(prefix="bench_gepa_") as tmp:
        variant = write_variant(args, Path(tmp))
        program = load_program(variant)
        task = build_task(program)
        feedback = feedback_of(program, task)
        sizes = {name: len(rows) for name, rows in task.splits.items()}
        log.info("splits %s", sizes)
        if not args.skip_lmpc:
            timing["lmpc_start"] = time.strftime("%H:%M:%S")
            ours = run_lmpc(variant, args.threads, Path(tmp), args.lmp.resolve().parent)
            timing["lmpc_end"] = time.strftime("%H:%M:%S")
            timing["load_after_lmpc"] = os.getloadavg()
            _check_splits(ours["summary"]["splits"], sizes)
            write_results(args, sizes, ours, theirs, settings, timing)  # partial results
    if not args.skip_dspy:
        timing["dspy_start"] = time.strftime("%H:%M:%S")
        with llama_server(gguf_path(), n_ctx=2048) as server:
            settings = DSPySettings(api_base=server.api_base, model=server.model_alias,
                                    max_tokens=args.dspy_max_tokens,
                                    temperature=dspy_temperature(program),
                                    threads=args.threads, num_candidates=0)
            theirs = run_dspy(task, feedback, settings, args)
            theirs["server_completions"] = server.log_path.read_text(
                errors="replace").count("POST /v1/completions")
        timing["dspy_end"] = time.strftime("%H:%M:%S")
        timing["load_after_dspy"] = os.getloadavg()
    write_results(args, sizes, ours, theirs, settings, timing)


def write_results(args: argparse.Namespace, sizes: dict[str, int], ours: dict[str, Any] | None,
                  theirs: dict[str, Any] | None, settings: DSPySettings | None,
                  timing: dict[str, Any]) -> None:
    import dspy

    row = side_by_side(ours, theirs, sizes)
    print(table(row), flush=True)
    if "lmpc_projection" in row:
        p = row["lmpc_projection"]
        print(f"lmpc dry run: build {p['dry_run_build_calls']} LM calls projected, "
              f"{p['build_calls_made']} made ({p['build_error']:+.1%}); gepa "
              f"{p['dry_run_pass_calls']} projected, {p['pass_new_calls']} made "
              f"({p['pass_error']:+.1%})", flush=True)
    results = {
        "task": "examples/classify.lmp" if args.lmp.resolve() == DEFAULT_LMP else str(args.lmp),
        "splits": sizes, "threads": args.threads, "seed": SEED,
        "max_metric_calls": args.max_metric_calls, "minibatch_size": args.minibatch_size,
        "use_merge": args.use_merge, "timing": timing,
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(),
        "dspy_version": dspy.__version__,
        "dspy_settings": None if settings is None else {
            **asdict(settings), "api_base": "loopback",
            "adapter": "ChatAdapter(use_json_adapter_fallback=False)", "model_type": "text"},
        "row": row, "lmpc_raw": ours, "dspy_raw": theirs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    log.info("results written to %s", args.out)


if __name__ == "__main__":
    main()
