"""``lmpc build FILE``: run the file's optimize pipeline(s) and write the artifact(s).

Progress goes to stderr; the result is a summary table on stdout, or one JSON object
per built program with ``--json`` (DESIGN.md §5). ``--dry-run`` prints the plan and the
projected LM calls without calling an LM. The artifact is written only when the whole
build has finished, atomically, so Ctrl-C or a crash never leaves half of one; finished
LM calls are in the cache, so a rerun does not pay for them again.

What the commands share (loading, trust, the LM client, errors) is in ``common``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from lmpc.cli.common import (
    CLIError,
    cli_errors,
    load_source,
    make_client,
    pct,
    require_effects,
    runner_trust,
    trust_options,
)
from lmpc.compiler.build import build_one, jsonable
from lmpc.ir import OptimizeIR, ProgramIR

log = logging.getLogger("lmpc")


# ---------------------------------------------------------------- the command


@click.command("build")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--program", "program_name", help="Build only the optimize blocks of this module.")
@click.option("--optimize", "block_name", metavar="NAME",
              help="Build only the optimize block of this name (optimize NAME = ...).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="Artifact path (default: build/NAME.json).")
@click.option("--seed", type=int, help="Override the optimize block's seed.")
@click.option("--dry-run", is_flag=True, help="Print the plan and projected LM calls only.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--threads", type=click.IntRange(1, 64), help="Parallel runs (default 4).")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--worker", is_flag=True,
              help="Only take work from the build's studies (mipro_v2 trials, random "
                   "search candidates) and exit; a plain build with the same study "
                   "finishes and writes the artifact.")
@click.option("--study", "study_name", metavar="NAME",
              help="Name of the build's studies (default: a hash of program, data and "
                   "parameters); every worker of one build gives the same.")
@click.option("--storage", metavar="URL",
              help="Optuna storage for the studies, e.g. postgresql://host/db "
                   "(default: the pass's storage, else SQLite beside the LM cache).")
@trust_options
@click.pass_context
def command(click_ctx: click.Context, file: str, program_name: str | None,
            block_name: str | None, output: str | None, seed: int | None, dry_run: bool,
            as_json: bool, lm_name: str | None, no_cache: bool, cache_dir: str | None,
            threads: int | None, quiet: bool, worker: bool, study_name: str | None,
            storage: str | None) -> None:
    """Optimize the program(s) in FILE and write the artifact(s).

    \b
    Across machines (docs/distributed.md): start `lmpc build FILE --worker --study NAME
    --storage postgresql://...` on each, with LMPC_CACHE_URL naming a shared cache,
    and one plain `lmpc build FILE --study NAME --storage ...` that writes the
    artifact. mipro_v2 (set parallel_trials = N) and bootstrap_random_search share
    their trials; the other passes run whole in every process (their steps depend on
    each other, or, for gepa, its engine drives its own loop).
    """
    obj = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    from lmpc.cli.progress import ProgressReporter

    progress = ProgressReporter(enabled=not quiet)
    with cli_errors(progress.close):
        program = load_source(Path(file))
        chosen = _select(program, program_name, block_name, Path(file))
        if output and len(chosen) > 1:
            raise CLIError("-o names one file but the source has several optimize blocks; "
                           "choose one with --optimize NAME (or --program)")
        outs = _outputs(chosen, output)
        trust = runner_trust(file)
        from lmpc.compiler.pipeline import task_lm_for

        for _, optimize in chosen:  # a dry run calls no LM, imports nothing: only reads
            require_effects(program, optimize.program, trust,
                            task_lm_for(program, optimize, lm_name), metric=optimize.metric,
                            datasets=True, kinds=("file",) if dry_run else
                            ("lm", "file", "code"))
        if dry_run:
            _dry_run(program, chosen, as_json, cache=not no_cache, seed=seed)
            return
        client = make_client(no_cache, cache_dir, obj.get("transport"), trust)
        from lmpc.compiler.passes.base import StudyOptions

        study = StudyOptions(study_name, storage, worker) \
            if (study_name or storage or worker) else None
        for (index, optimize), out in zip(chosen, outs, strict=True):
            if worker:
                _work(program, optimize, client, seed, lm_name, threads, progress, trust,
                      study, as_json)
                continue
            summary = build_one(program, index, optimize, client=client, out=out, seed=seed,
                                lm_name=lm_name, threads=threads, progress=progress,
                                trust=trust, study=study)
            progress.close()
            _print_summary(summary, as_json)


def _work(program: ProgramIR, optimize: OptimizeIR, client: Any, seed: int | None,
          lm_name: str | None, threads: int | None, progress: Any, trust: Any, study: Any,
          as_json: bool) -> None:
    """``--worker``: take units of the block's studies until they are done; no artifact."""
    from lmpc.compiler.pipeline import run_optimize

    done = run_optimize(program, optimize, client=client, seed=seed, progress=progress,
                        lm_override=lm_name, threads=threads, trust=trust, study=study)
    progress.close()
    line = {"program": done.module, "worker": True,
            "passes": [{"name": r.name, "units": r.report.get("units_run")}
                       for r in done.passes],
            "lm_calls": int(done.usage.get("calls", 0)),
            "cache_hits": int(done.usage.get("cache_hits", 0))}
    if as_json:
        click.echo(json.dumps(line))
        return
    ran = ", ".join(f"{p['name']} {p['units']} units" for p in line["passes"]
                    if p["units"] is not None)
    click.echo(f"worker on {done.module} done: {ran}; LM calls {line['lm_calls']} new, "
               f"{line['cache_hits']} cached; the study is complete")


def _select(program: ProgramIR, module: str | None, block: str | None,
            path: Path) -> list[tuple[int, OptimizeIR]]:
    chosen = [(i, o) for i, o in enumerate(program.optimizes)
              if module in (None, o.program) and block in (None, o.name)]
    if not chosen:
        if block is not None:
            names = [o.name for o in program.optimizes if o.name]
            known = f" (named blocks: {', '.join(names)})" if names else \
                " (no block is named: write optimize NAME = Module with ...)"
            raise CLIError(f"{path}: no optimize block named {block!r}"
                           f"{' for module ' + repr(module) if module else ''}{known}")
        what = f"for module {module!r}" if module else "block"
        raise CLIError(f"{path}: no optimize {what} to build")
    return chosen


def _outputs(chosen: list[tuple[int, OptimizeIR]], output: str | None) -> list[Path]:
    """Each block's artifact path: ``-o``, else ``build/<block name or module>.json``.
    Two blocks that would write one file are an error, not a silent overwrite."""
    if output:
        return [Path(output)]
    outs = [Path("build") / f"{o.name or o.program}.json" for _, o in chosen]
    for i, out in enumerate(outs):
        if out in outs[:i]:
            first, second = chosen[outs.index(out)][1], chosen[i][1]
            where = [str(o.span) if o.span else "?" for o in (first, second)]
            raise CLIError(
                f"the optimize blocks at {where[0]} and {where[1]} would both write "
                f"{out}; name them (optimize fast = {second.program} with ...) and build one "
                "with --optimize NAME, or give -o")
    return outs


def _dry_run(program: ProgramIR, chosen: list[tuple[int, OptimizeIR]], as_json: bool,
             cache: bool = True, seed: int | None = None) -> None:
    from lmpc.compiler.pipeline import estimate_plan
    from lmpc.eval.data import load_splits

    plans = []
    for _, optimize in chosen:
        dataset = program.datasets.get(optimize.dataset)
        if dataset is None:
            raise CLIError(f"optimize {optimize.program}: unknown dataset {optimize.dataset!r}")
        inputs = [f.name for f in program.modules[optimize.program].inputs]
        splits = load_splits(dataset, program.base_dir, inputs)
        sizes = {k: len(v) for k, v in splits.items()}
        steps = estimate_plan(program, optimize, sizes, splits=splits, cache=cache, seed=seed)
        plans.append({"program": optimize.program, "optimize": optimize.name,
                      "splits": sizes, "steps": steps,
                      "projected_lm_calls": sum(s["calls"] for s in steps),
                      "projected_max_lm_calls": sum(s["max_calls"] for s in steps),
                      "cache": cache, "budget": optimize.budget.model_dump()})
    if as_json:
        for plan in plans:
            click.echo(json.dumps(jsonable(plan), sort_keys=True))
        return
    for plan in plans:
        sizes = plan["splits"]
        named = f" (optimize {plan['optimize']})" if plan["optimize"] else ""
        click.echo(f"plan for {plan['program']}{named}: train {sizes['train']}, "
                   f"val {sizes['val']}, "
                   f"test {sizes['test']} examples")
        for step in plan["steps"]:
            bound = f" (at most {step['max_calls']})" if step["max_calls"] != step["calls"] \
                else ""
            click.echo(f"  {step['step']:<36} ~{step['calls']} LM calls{bound}")
            if step.get("params"):
                params = ", ".join(f"{k}={_value(v)}" for k, v in step["params"].items())
                click.echo(f"      {params}")
            if step.get("training"):
                click.echo(f"      + training: {step['training']}")
        cap = plan["budget"].get("calls")
        budget = f" (budget: {cap} calls for the passes)" if cap else ""
        worst = plan["projected_max_lm_calls"]
        bound = f", at most {worst} if the teacher fails on every example" \
            if worst != plan["projected_lm_calls"] else ""
        where = "a cold cache" if plan["cache"] else "no cache"
        click.echo(f"  total projected: ~{plan['projected_lm_calls']} LM calls with {where}"
                   f"{bound}{budget}")


def _value(value: Any) -> str:
    """A parameter value as the source spells it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        keys = ("program", "optimize", "artifact", "scores", "lm_calls", "cache_hits", "tokens",
                "cost_usd", "seconds", "failures", "retries", "rejected", "parse_retries",
                "splits", "budget_stop", "passes")
        click.echo(json.dumps({k: summary[k] for k in keys}))
        return
    scores, sizes = summary["scores"], summary["splits"]
    click.echo(f"built {summary['program']} -> {summary['artifact']}")
    click.echo(f"  {'':<12}{'before':>10}{'after':>10}")
    for split in scores:
        label = f"{split} (n={sizes.get(split, 0)})"
        click.echo(f"  {label:<12}{pct(scores[split]['before']):>10}"
                   f"{pct(scores[split]['after']):>10}")
    if "train" in scores:
        click.echo("  (no val split: scored on the trainset, which the passes learned from)")
    for run in summary["passes"]:
        best = f", best candidate {pct(run['best'])}" if run["best"] is not None else ""
        stopped = f", stopped: {run['stopped']}" if run["stopped"] else ""
        click.echo(f"  pass {run['name']}: {run['lm_requests']} LM requests{best}{stopped}")
    click.echo(f"  LM calls {summary['lm_calls']} new, {summary['cache_hits']} cached, "
               f"{summary['failures']} failed · retries {summary['retries']} "
               f"({summary['rejected']} replies rejected, {summary['parse_retries']} "
               f"unparsable asked again) · tokens {summary['tokens']} · "
               f"${summary['cost_usd']:.4f} · {summary['seconds']:.1f}s")
