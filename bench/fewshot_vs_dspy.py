"""Few-shot optimizers, lmpc vs DSPy 3.4.1: the same task, model, splits and settings.

For each of LabeledFewShot, BootstrapFewShot and BootstrapFewShotWithRandomSearch:

- lmpc: a temporary variant of the .lmp file whose ``optimize`` block runs that one pass
  is built with ``lmpc build --json`` in a subprocess, with a fresh cache (every LM call
  is really made); the embedded model runs in-process (llama-cpp-python).
- DSPy: the same model served by ``python -m llama_cpp.server`` on loopback, as a
  text-completion model with the ChatAdapter, on the very train/val/test rows lmpc uses
  (the split is taken from lmpc itself) and scored with lmpc's own metric.

Both sides report test accuracy before → after, LM calls, tokens and wall time; the table
is printed and the results written as JSON.

Run from the repo root:

    python bench/fewshot_vs_dspy.py [--candidates 2] [--threads 1] [--limit N]

``--limit N`` keeps the first N rows of each split on the DSPy side only (a quick check
of the harness; lmpc always builds on the full splits of the .lmp file).
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _dspy_side import DSPySettings, FieldSpec, Task, run_dspy  # noqa: E402
from _server import OPENMP_ENV, gguf_path, llama_server  # noqa: E402

log = logging.getLogger("lmpc.bench")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LMP = REPO / "examples" / "classify.lmp"
DEFAULT_OUT = REPO / "bench" / "results" / "fewshot_vs_dspy.json"
OPTIMIZERS = ("labeled_fewshot", "bootstrap_fewshot", "bootstrap_random_search")
BUILD_TIMEOUT_S = 1800
MAX_ERRORS = 10000  # DSPy's default aborts on this model; lmpc gets the same value


def pass_line(name: str, candidates: int) -> str:
    """The lmpc pass with the settings DSPy gets in ``_dspy_side.make_optimizer``."""
    if name == "labeled_fewshot":
        return "labeled_fewshot(k = 4)"
    if name == "bootstrap_fewshot":
        return ("bootstrap_fewshot(max_bootstrapped_demos = 4, max_labeled_demos = 4, "
                f"max_errors = {MAX_ERRORS})")
    return ("bootstrap_random_search(max_bootstrapped_demos = 4, max_labeled_demos = 4, "
            f"num_candidate_programs = {candidates}, max_errors = {MAX_ERRORS})")


# ---------------------------------------------------------------- the task, from lmpc's IR


def load_program(path: Path) -> Any:
    """Parse and check the .lmp file with lmpc; exit with its diagnostics if it is bad."""
    from lmpc.compiler.check.program import load_program as lmpc_load
    from lmpc.diagnostics import render_all

    program, diagnostics, sources = lmpc_load(path)
    errors = [d for d in diagnostics if getattr(d, "severity", "error") == "error"]
    if program is None or errors:
        sys.exit(f"{path}: does not check:\n{render_all(errors or diagnostics, sources)}")
    return program


def build_task(program: Any) -> Task:
    """The single-predictor task of the first optimize block, with lmpc's split rows."""
    from lmpc.eval.data import load_examples, split_examples
    from lmpc.eval.metrics import build_metric

    optimize = program.optimizes[0]
    module = program.modules[optimize.program]
    steps = [s for s in module.steps if s.kind == "predictor"]
    if len(steps) != 1 or len(module.steps) != 1:
        sys.exit(f"module {module.name}: the benchmark needs exactly one predictor step")
    step = steps[0]
    predictor = program.predictors[step.predictor]
    if predictor.kind != "predict":
        sys.exit(f"predictor {predictor.id}: the benchmark compares `predict` only")
    signature = predictor.signature
    metric_ir = program.metrics[optimize.metric]
    output_name = _output_field(module, step.name, metric_ir.field)
    sig_output = _signature_output(signature, output_name)
    rename = _input_renames(step, [f.name for f in module.inputs])
    dataset = program.datasets[optimize.dataset]
    examples = load_examples(dataset, program.base_dir, [f.name for f in module.inputs])
    parts = split_examples(examples, dataset.split)
    return Task(
        instructions=signature.instructions,
        inputs=[FieldSpec(f.name, f.desc) for f in signature.inputs],
        output=FieldSpec(sig_output.name, _output_desc(program, sig_output),
                         _choices(program, sig_output.type)),
        splits={name: [_row(ex, rename, metric_ir.field, sig_output.name) for ex in rows]
                for name, rows in parts.items()},
        score=_scorer(build_metric(metric_ir, program), metric_ir.field, sig_output.name),
    )


def _output_field(module: Any, step_name: str, metric_field: str | None) -> str:
    """The predictor output the metric scores (module output -> ``step.field``)."""
    expr = module.returns.get(metric_field or "")
    if expr is None or expr.kind != "ref" or len(expr.path) != 2 or expr.path[0] != step_name:
        sys.exit(f"metric field {metric_field!r} must be returned straight from the predictor")
    return str(expr.path[1])


def _signature_output(signature: Any, name: str) -> Any:
    for out in signature.outputs:
        if out.name == name:
            return out
    sys.exit(f"signature {signature.name}: no output {name!r}")


def _input_renames(step: Any, module_inputs: list[str]) -> dict[str, str]:
    """Signature input name <- module input name, for plain ``field = input`` arguments."""
    renames = {}
    for arg, expr in step.args.items():
        if expr.kind != "ref" or len(expr.path) != 1 or expr.path[0] not in module_inputs:
            sys.exit(f"step {step.name}: argument {arg} must be a module input")
        renames[arg] = expr.path[0]
    return renames


def _output_desc(program: Any, field: Any) -> str | None:
    """The field's description, plus its enum values' descriptions (lmpc shows those)."""
    enum = program.enums.get(field.type.name) if field.type.kind == "enum" else None
    descs = getattr(enum, "descs", None) or {}
    parts = [field.desc] if field.desc else []
    parts += [f"{value}: {desc}" for value, desc in descs.items()]
    return "; ".join(parts) or None


def _choices(program: Any, type_ref: Any) -> tuple[str, ...]:
    if type_ref.kind == "enum":
        return tuple(program.enums[type_ref.name].values)
    if type_ref.kind == "literal":
        return tuple(str(v) for v in type_ref.values)
    return ()


def _row(example: Any, rename: dict[str, str], label: str | None, output: str) -> dict[str, Any]:
    row = {arg: example.inputs[source] for arg, source in rename.items()}
    row[output] = example.labels[label] if label else None
    return row


def _scorer(metric: Any, field: str | None, output: str) -> Any:
    """lmpc's metric on (row, predicted): the row holds the label as the signature's
    output, the metric wants it as the module's output ``field``."""
    from lmpc.ir import Example

    name = field or output

    def score(row: dict[str, Any], predicted: Any) -> float:
        return float(metric(Example(inputs={}, labels={name: row[output]}), {name: predicted}))

    return score


# ---------------------------------------------------------------- lmpc's side

OPTIMIZE_RE = re.compile(r"^[ \t]*optimize\s+\w+\s+with\s+\w+\s+on\s+\w+\s*\{", re.M)
SETTING_RE = re.compile(r"^\s*(\w+)\s*:")
DATASET_RE = re.compile(r'(dataset\s+\w+\s*=\s*(?:jsonl|csv|json)\s+)"([^"]*)"')
IMPORT_RE = re.compile(r'(^\s*import\s+)"([^"]*)"', re.M)


def variant_source(text: str, source_dir: Path, pass_text: str) -> str:
    """``text`` whose first optimize block runs only ``pass_text``; paths made absolute
    so the variant can live in a temporary folder. The block's settings are kept except
    ``budget`` (DSPy has none, and a cap could cut one side short)."""
    def absolute(match: re.Match[str]) -> str:
        path = Path(match.group(2))
        return f'{match.group(1)}"{path if path.is_absolute() else source_dir / path}"'

    text = IMPORT_RE.sub(absolute, DATASET_RE.sub(absolute, text))
    match = OPTIMIZE_RE.search(text)
    if match is None:
        sys.exit("the .lmp file has no optimize block")
    end = _closing_brace(text, match.end())
    settings = [line for line in text[match.end():end].splitlines()
                if (m := SETTING_RE.match(line)) and m.group(1) != "budget"]
    body = "\n".join([""] + settings + [f"  {pass_text}", ""])
    return text[:match.end()] + body + text[end:]


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the block opened just before ``start``."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == '"':
            i = text.index('"', i + 1)  # strings in a block hold no escaped quotes here
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    sys.exit("the optimize block is not closed")


def run_lmpc(source: Path, name: str, candidates: int, threads: int,
             workdir: Path) -> dict[str, Any]:
    """``lmpc build --json`` of the one-pass variant, with a fresh cache."""
    variant = workdir / f"{name}.lmp"
    variant.write_text(variant_source(source.read_text(encoding="utf-8"),
                                      source.resolve().parent, pass_line(name, candidates)),
                       encoding="utf-8")
    cache, artifact = workdir / f"cache_{name}", workdir / f"{name}.json"
    command = [sys.executable, "-c", "from lmpc.cli import main; main()", "build",
               str(variant), "--json", "--quiet", "--cache-dir", str(cache),
               "--threads", str(threads), "-o", str(artifact),
               # the variant lives in a temporary folder and reads the example's data
               "--allow-path", str(source.resolve().parent)]
    log.info("lmpc: building with %s", name)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env={**os.environ, **OPENMP_ENV, "LMPC_CACHE_DIR": str(cache)},
                          cwd=workdir)
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"lmpc build ({name}) failed with {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    summary = json.loads(lines[-1])
    pass_usage = json.loads(artifact.read_text())["passes"][0]["usage"]
    return {"summary": summary, "pass_usage": pass_usage, "process_seconds": round(wall, 2)}


# ---------------------------------------------------------------- the comparison


def compare(name: str, ours: dict[str, Any] | None, theirs: dict[str, Any] | None,
            zero_shot: dict[str, Any] | None) -> dict[str, Any]:
    """One optimizer's row: both sides' numbers on a common footing, and the ratios.

    "optimizer" counts only the LM work of the pass / ``compile``; "total" is all the
    work behind the row (lmpc's whole build: zero-shot and final evaluation of val and
    test plus the pass; DSPy: zero-shot test, compile, final test).
    """
    row: dict[str, Any] = {"optimizer": name}
    if ours is not None:
        summary, usage = ours["summary"], ours["pass_usage"]
        row["lmpc"] = {
            "test_before": summary["scores"]["test"]["before"],
            "test_after": summary["scores"]["test"]["after"],
            "val_before": summary["scores"]["val"]["before"],
            "val_after": summary["scores"]["val"]["after"],
            "optimizer_calls": usage["lm_requests"],
            "optimizer_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
            "total_calls": summary["lm_calls"], "total_tokens": summary["tokens"],
            "seconds": summary["seconds"], "process_seconds": ours["process_seconds"],
            "failures": summary["failures"], "splits": summary["splits"],
        }
    if theirs is not None and zero_shot is not None:
        compiled, final = theirs["compile"], theirs["evaluate_test"]
        row["dspy"] = {
            "test_before": theirs["test_before"], "test_after": theirs["test_after"],
            "demos": theirs["demos"],
            "optimizer_calls": compiled["calls"], "optimizer_tokens": compiled["tokens"],
            "total_calls": zero_shot["calls"] + compiled["calls"] + final["calls"],
            "total_tokens": zero_shot["tokens"] + compiled["tokens"] + final["tokens"],
            "seconds": round(zero_shot["seconds"] + compiled["seconds"] + final["seconds"], 2),
        }
    if "lmpc" in row and "dspy" in row:
        row["ratio_lmpc_over_dspy"] = {
            key: _ratio(row["lmpc"][key], row["dspy"][key])
            for key in ("optimizer_calls", "optimizer_tokens", "total_calls", "total_tokens",
                        "seconds")}
    return row


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table (accuracy before → after, calls, tokens, time, ratios)."""
    head = (f"{'optimizer':<24}{'side':<6}{'test acc':>16}{'opt calls':>11}{'calls':>8}"
            f"{'tokens':>10}{'seconds':>10}")
    lines = [head, "-" * len(head)]
    for row in rows:
        for side in ("lmpc", "dspy"):
            if side not in row:
                continue
            r = row[side]
            acc = f"{_pct(r['test_before'])} → {_pct(r['test_after'])}"
            lines.append(f"{row['optimizer']:<24}{side:<6}{acc:>16}{r['optimizer_calls']:>11}"
                         f"{r['total_calls']:>8}{r['total_tokens']:>10}{r['seconds']:>10.1f}")
        ratio = row.get("ratio_lmpc_over_dspy")
        if ratio:
            lines.append(f"{'':<24}{'ratio':<6}{'':>16}{_x(ratio['optimizer_calls']):>11}"
                         f"{_x(ratio['total_calls']):>8}{_x(ratio['total_tokens']):>10}"
                         f"{_x(ratio['seconds']):>10}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmp", type=Path, default=DEFAULT_LMP)
    parser.add_argument("--candidates", type=int, default=2,
                        help="num_candidate_programs of random search (both sides)")
    parser.add_argument("--threads", type=int, default=1, help="parallel runs, both sides")
    parser.add_argument("--dspy-max-tokens", type=int, default=16,
                        help="DSPy's max_tokens (llama.cpp's default when DSPy sends none)")
    parser.add_argument("--limit", type=int, help="DSPy side only: first N rows per split")
    parser.add_argument("--only", choices=OPTIMIZERS, action="append",
                        help="run only this optimizer (repeatable)")
    parser.add_argument("--skip-lmpc", action="store_true")
    parser.add_argument("--skip-dspy", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--reuse", type=Path, metavar="JSON",
                        help="start from an earlier results file (with --skip-lmpc or "
                             "--skip-dspy, to measure the two sides at different times)")
    return parser.parse_args()


def dspy_temperature(program: Any) -> float:
    """The task LM's temperature in the .lmp (lmpc's default 0.0 otherwise)."""
    from lmpc.compiler.pipeline import task_lm_for

    task_lm = task_lm_for(program, program.optimizes[0], None)
    return float(task_lm.settings.get("temperature", 0.0))


def main() -> None:
    # a plain `kill` still runs the finally blocks (the server is stopped)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    logging.getLogger("dspy").setLevel(logging.ERROR)  # one truncation warning per call
    names = list(args.only or OPTIMIZERS)
    program = load_program(args.lmp)
    task = build_task(program)
    sizes = {name: len(rows) for name, rows in task.splits.items()}
    log.info("task: %s; splits %s", task.output.name, sizes)
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    settings = None
    if args.reuse:  # one side measured in an earlier run (the sides never overlap in time)
        earlier = json.loads(args.reuse.read_text(encoding="utf-8"))
        ours, theirs = earlier.get("lmpc_raw") or {}, earlier.get("dspy_raw") or {}
        settings = DSPySettings(**earlier["dspy_settings_raw"]) if theirs else None
    if not args.skip_lmpc:
        ours = run_lmpc_side(args, names, sizes)
        report(args, names, ours, theirs, sizes, settings)  # partial results survive
    if not args.skip_dspy:
        if args.limit:
            task.splits = {k: v[: args.limit] for k, v in task.splits.items()}
        with llama_server(gguf_path(), n_ctx=2048) as server:
            settings = DSPySettings(api_base=server.api_base, model=server.model_alias,
                                    max_tokens=args.dspy_max_tokens,
                                    temperature=dspy_temperature(program),
                                    threads=args.threads, num_candidates=args.candidates)
            theirs = run_dspy(task, settings, names)
            theirs["server_completions"] = server.log_path.read_text(
                errors="replace").count("POST /v1/completions")
    report(args, names, ours, theirs, sizes, settings)


def run_lmpc_side(args: argparse.Namespace, names: list[str],
                  sizes: dict[str, int]) -> dict[str, Any]:
    """Every lmpc build; a failed build is recorded and the benchmark goes on."""
    ours: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_lmpc_") as tmp:
        for name in names:
            try:
                ours[name] = run_lmpc(args.lmp, name, args.candidates, args.threads, Path(tmp))
            except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                log.error("lmpc build with %s failed: %s", name, exc)
                continue
            _check_splits(ours[name]["summary"]["splits"], sizes)
    return ours


def report(args: argparse.Namespace, names: list[str], ours: dict[str, Any],
           theirs: dict[str, Any], sizes: dict[str, int], settings: DSPySettings | None) -> None:
    zero = theirs.get("zero_shot")
    rows = [compare(n, ours.get(n), theirs.get("optimizers", {}).get(n), zero) for n in names]
    print(table(rows), flush=True)
    write_results(args, rows, ours, theirs, sizes, settings)


def _check_splits(reported: dict[str, int], sizes: dict[str, int]) -> None:
    if {k: reported.get(k, 0) for k in sizes} != sizes:
        sys.exit(f"lmpc build split the data as {reported}, the benchmark as {sizes}")


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]], ours: dict[str, Any],
                  theirs: dict[str, Any], sizes: dict[str, int],
                  settings: DSPySettings | None) -> None:
    import dspy

    results = {
        "task": str(args.lmp.resolve().relative_to(REPO)) if args.lmp.resolve().is_relative_to(
            REPO) else str(args.lmp),
        "splits": sizes, "dspy_limit_per_split": args.limit,
        "threads": args.threads, "num_candidate_programs": args.candidates,
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(),
        "dspy_version": dspy.__version__,
        "dspy_settings": None if settings is None else {
            "max_tokens": settings.max_tokens, "temperature": settings.temperature,
            "adapter": "ChatAdapter(use_json_adapter_fallback=False)", "model_type": "text"},
        "dspy_zero_shot": theirs.get("zero_shot"),
        "dspy_server_completions": theirs.get("server_completions"),
        "rows": rows,
        "lmpc_raw": ours, "dspy_raw": theirs,
        "dspy_settings_raw": None if settings is None else asdict(settings),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    log.info("results written to %s", args.out)


if __name__ == "__main__":
    main()
