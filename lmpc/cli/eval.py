"""``lmpc eval ARTIFACT_OR_FILE --data ROWS``: score a program on labeled rows.

The rows hold the module's input fields and the labels the metric reads. The metric is
``--metric NAME``, else the one the artifact was built with, else the optimize block's,
else the only metric declared. ``--json`` prints ``{"score", "n", "failures", "retries",
"lm_failures"}``.

Exit code: 1 when more rows than ``--max-failures`` (default 0) failed to run — an LM
call that failed after its retries, a reply that could not be parsed, a broken
``assert`` — or on an error; a row that ran and scored low is not a failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lmpc.cli.common import (
    CLIError,
    cli_errors,
    load_target,
    make_client,
    pct,
    require_effects,
    runner_trust,
    trust_options,
)
from lmpc.ir import DatasetIR, ProgramIR

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".json": "json"}


@click.command("eval")
@click.argument("target", metavar="ARTIFACT_OR_FILE", type=click.Path(dir_okay=False))
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Labeled rows: .jsonl, .csv or .json.")
@click.option("--metric", "metric_name", help="Metric to score with.")
@click.option("--program", "program_name", help="Module to score (default: the built one).")
@click.option("--json", "as_json", is_flag=True, help='Print {"score", "n", "failures"}.')
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--max-failures", type=click.IntRange(0), default=0, show_default=True,
              help="Exit 1 when more rows than this fail to run (not: score wrong).")
@trust_options
@click.pass_context
def command(click_ctx: click.Context, target: str, data: str, metric_name: str | None,
            program_name: str | None, as_json: bool, lm_name: str | None, no_cache: bool,
            cache_dir: str | None, threads: int, max_failures: int) -> None:
    """Score ARTIFACT_OR_FILE on the rows of --data."""
    obj = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    with cli_errors():
        program, module, artifact = load_target(target, program_name)
        examples = _examples(program, module, Path(data))
        from lmpc.compiler.pipeline import make_run_ctx, task_lm_for
        from lmpc.eval.evaluate import evaluate
        from lmpc.eval.metrics import build_metric

        task_lm = task_lm_for(program, _optimize_of(program, module), lm_name)
        metric_ir = program.metrics[_metric_name(program, module, metric_name, artifact)]
        trust = runner_trust(target)
        require_effects(program, module, trust, task_lm, metric=metric_ir.name)
        client = make_client(no_cache, cache_dir, obj.get("transport"), trust)
        ctx = make_run_ctx(program, client, task_lm, trust=trust)
        metric = build_metric(metric_ir, program, ctx.derive(attribution={"metric": "judge"}))
        result = evaluate(program, module, examples, metric, ctx, threads=threads)
    usage = client.usage.snapshot()
    retries = usage["retries"] + ctx.stats.get("parse_retries")
    if as_json:
        click.echo(json.dumps({"score": result.score, "n": result.n,
                               "failures": result.failures, "retries": retries,
                               "lm_failures": usage["failures"]}))
    else:
        click.echo(f"{module} on {data}: {metric_ir.name} {pct(result.score)} "
                   f"(n={result.n}, failures {result.failures}, retries {retries})")
    for line in result.errors[:5]:
        click.echo(f"  failed: {line}", err=True)
    if result.failures > max_failures:
        click.echo(f"error: {result.failures} of {result.n} rows failed to run "
                   f"(allowed: {max_failures}; see --max-failures)", err=True)
        sys.exit(1)


def _examples(program: ProgramIR, module: str, data: Path) -> list[Any]:
    from lmpc.eval.data import load_examples

    fmt = FORMATS.get(data.suffix.lower())
    if fmt is None:
        raise CLIError(f"{data}: unknown data format (use .jsonl, .csv or .json)")
    from lmpc.eval.data import DataError

    inputs = [f.name for f in program.modules[module].inputs]
    dataset = DatasetIR(name=data.stem, format=fmt, path=str(data.resolve()))  # type: ignore[arg-type]
    try:
        return load_examples(dataset, ".", inputs)
    except DataError:
        # rows in the columns of the program's own dataset (e.g. its `map: { ticket:
        # "text" }`) are read with that mapping, so the build's data file works as is
        mapping = _dataset_mapping(program, module)
        if not mapping:
            raise
        return load_examples(dataset.model_copy(update={"mapping": mapping}), ".", inputs)


def _dataset_mapping(program: ProgramIR, module: str) -> dict[str, str]:
    optimize = _optimize_of(program, module)
    source = program.datasets.get(optimize.dataset) if optimize else None
    return dict(source.mapping) if source else {}


def _optimize_of(program: ProgramIR, module: str) -> Any:
    return next((o for o in program.optimizes if o.program == module), None)


def _metric_name(program: ProgramIR, module: str, name: str | None, artifact: Any) -> str:
    if name is None and artifact is not None and artifact.metric:
        name = artifact.metric
    if name is None:
        optimize = _optimize_of(program, module)
        name = optimize.metric if optimize else None
    if name is None and len(program.metrics) == 1:
        name = next(iter(program.metrics))
    if name is None:
        known = ", ".join(sorted(program.metrics)) or "none declared"
        raise CLIError(f"choose a metric with --metric ({known})")
    if name not in program.metrics:
        known = ", ".join(sorted(program.metrics)) or "none declared"
        raise CLIError(f"unknown metric {name!r} (metrics: {known})")
    return name
