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
import time
from collections.abc import Callable
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
@trust_options
@click.pass_context
def command(click_ctx: click.Context, file: str, program_name: str | None,
            block_name: str | None, output: str | None, seed: int | None, dry_run: bool,
            as_json: bool, lm_name: str | None, no_cache: bool, cache_dir: str | None,
            threads: int | None, quiet: bool) -> None:
    """Optimize the program(s) in FILE and write the artifact(s)."""
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
        for (index, optimize), out in zip(chosen, outs, strict=True):
            summary = build_one(program, index, optimize, client=client, out=out, seed=seed,
                                lm_name=lm_name, threads=threads, progress=progress,
                                trust=trust)
            progress.close()
            _print_summary(summary, as_json)


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


def build_one(program: ProgramIR, index: int, optimize: OptimizeIR, *, client: Any, out: Path,
              seed: int | None, lm_name: str | None, threads: int | None,
              progress: Callable[[dict[str, Any]], None], trust: Any = None,
              keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one optimize block, write its artifact, return the summary (and put the
    ``BuildResult`` in ``keep["result"]``, for the Python API)."""
    from lmpc.compiler.artifact import check_no_secrets, write_artifact
    from lmpc.compiler.pipeline import run_optimize

    check_no_secrets(program)  # fail now, not after an hour of optimization
    started = time.monotonic()
    usage_before = client.usage.snapshot()
    result = run_optimize(program, optimize, client=client, seed=seed, progress=progress,
                          lm_override=lm_name, threads=threads, trust=trust)
    write_artifact(to_artifact(result, index), out)
    if keep is not None:
        keep["result"] = result
    spent = {k: v - usage_before.get(k, 0) for k, v in client.usage.snapshot().items()
             if isinstance(v, int | float)}
    return {
        "program": result.module,
        "optimize": optimize.name,
        "artifact": str(out),
        "scores": result.scores,
        "lm_calls": int(spent["calls"]),
        "cache_hits": int(spent["cache_hits"]),
        "tokens": int(spent["prompt_tokens"] + spent["completion_tokens"]),
        "cost_usd": round(spent["cost_usd"], 6),
        "seconds": round(time.monotonic() - started, 2),
        "failures": int(spent["failures"]),
        "retries": int(spent["retries"] + spent["parse_retries"]),
        "rejected": int(spent["rejected"]),
        "parse_retries": int(spent["parse_retries"]),
        "splits": result.splits,
        "budget_stop": result.budget_stop,
        "passes": [{"name": r.name, "lm_requests": r.usage.get("lm_requests", 0),
                    "best": max((c.score for c in r.candidates), default=None),
                    "stopped": r.stopped} for r in result.passes],
    }


def to_artifact(result: Any, optimize_index: int) -> Any:
    """The artifact of a finished build (deterministic: no times, no new-vs-cached counts)."""
    from lmpc.compiler.artifact import (
        Artifact,
        CandidateRecord,
        DatasetRecord,
        PassRecord,
        Scores,
        TrialRecord,
        UsageRecord,
        program_subset,
    )

    ir = program_subset(result.program, result.module, optimize_index)
    ir.lms[result.task_lm.name] = result.task_lm
    ir.optimizes[0].lms["lm"] = result.task_lm.name  # `lmpc run` uses the model it was built on
    passes = [PassRecord(
        name=r.name, params=jsonable(r.params), seed=r.seed,
        candidates=[CandidateRecord(label=c.label, score=c.score) for c in r.candidates],
        report=jsonable(r.report), usage=UsageRecord(**r.usage), stopped=r.stopped,
        trajectory=[TrialRecord(**t) for t in getattr(r, "trajectory", [])],
    ) for r in result.passes]
    return Artifact(
        program=result.module, metric=result.metric, task_lm=result.task_lm.name,
        seed=result.seed, sources=result.program.sources,
        datasets=[DatasetRecord(**d) for d in result.datasets], splits=result.splits, ir=ir,
        passes=passes, scores=Scores.model_validate(result.scores),
        usage=UsageRecord(**result.usage), budget_stop=result.budget_stop,
        examples=example_records(result), baseline=dict(getattr(result, "original", {})),
    )


MAX_EXAMPLES = 1000  # per split kept for the report; the scores cover every example
CLIP = 300  # characters of a string value kept for the report


def example_records(result: Any) -> dict[str, Any]:
    """Per scored split, each example's inputs, labels, and score and outputs before
    and after (what `lmpc report` shows as wins and losses)."""
    from pathlib import PurePath

    from lmpc.compiler.artifact import ExampleRecord

    records: dict[str, Any] = {}
    for split, examples in getattr(result, "examples", {}).items():
        before, after = result.before.get(split), result.after.get(split)
        if before is None or after is None:
            continue
        rows = []
        for i, example in enumerate(examples[:MAX_EXAMPLES]):
            path, _, line = example.source.rpartition(":")
            source = f"{PurePath(path).name}:{line}" if path else example.source
            rows.append(ExampleRecord(
                source=source, inputs=_clip(jsonable(example.inputs)),
                labels=_clip(jsonable(example.labels)),
                before=before.scores[i], after=after.scores[i],
                outputs_before=_shown_outputs(before.predictions[i]),
                outputs_after=_shown_outputs(after.predictions[i])))
        records[split] = rows
    return records


def _shown_outputs(prediction: Any) -> dict[str, Any] | None:
    if prediction is None:
        return None
    shown = {k: v for k, v in prediction.outputs.items() if k != "trajectory"}
    return _clip(jsonable(shown))


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= CLIP else value[:CLIP] + "…"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value[:20]]
    return value


def jsonable(value: Any) -> Any:
    """A pass report as plain JSON data (IR nodes dumped, unknown objects as text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


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
