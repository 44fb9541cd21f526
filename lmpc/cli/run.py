"""``lmpc run ARTIFACT_OR_FILE``: execute a program on inputs, one JSON line per input.

A ``.lmp`` file runs the unoptimized program; anything else is read as an artifact.
Outputs go to stdout (``null`` for a row that failed, so lines stay aligned with the
inputs); errors go to stderr; the exit code is 1 if anything failed. Rows are checked
against the module's inputs first: a row that lacks one (or whose value does not fit its
type) stops the run before any LM call, with nothing on stdout.
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
    require_effects,
    runner_trust,
    trust_options,
)
from lmpc.ir import ProgramIR


@click.command("run")
@click.argument("target", metavar="ARTIFACT_OR_FILE")
@click.option("--program", "program_name", help="Module to run (default: the built one).")
@click.option("--input", "input_json", metavar="JSON", help="One input as a JSON object.")
@click.option("--input-file", type=click.Path(dir_okay=False), help="Input rows, JSON lines.")
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@trust_options
@click.pass_context
def command(
    click_ctx: click.Context,
    target: str,
    program_name: str | None,
    input_json: str | None,
    input_file: str | None,
    lm_name: str | None,
    no_cache: bool,
    cache_dir: str | None,
    threads: int,
) -> None:
    """Run a program on --input or on each row of --input-file."""
    # Tests (and embedders) may hand in a transport: ``obj={"transport": ...}``.
    obj = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    if (input_json is None) == (input_file is None):
        raise click.UsageError("give exactly one of --input JSON or --input-file ROWS.jsonl")
    with cli_errors():
        rows = _rows(input_json, input_file)
        program, module, _ = load_target(target, program_name)
        _check_rows(program, module, rows, input_file)
        ctx = run_context(program, module, target, lm_name, no_cache, cache_dir,
                          obj.get("transport"))
        from lmpc.runtime.execute import run_batch

        results = run_batch(program, module, rows, ctx, threads=threads)
    failed = _report(results, input_file)
    fallbacks = ctx.stats.get("adapter_fallbacks")
    if fallbacks:
        click.echo(f"note: {fallbacks} repl(ies) needed the JSON fallback format", err=True)
    sys.exit(1 if failed else 0)


def _check_rows(program: ProgramIR, module: str, rows: list[dict[str, Any]],
                input_file: str | None) -> None:
    """Every row has the module's inputs, of the right types, before any LM is called;
    otherwise one error line per bad row and nothing on stdout."""
    import difflib

    from lmpc.runtime.errors import MissingInput, RuntimeFailure
    from lmpc.runtime.execute import module_inputs

    problems = []
    for i, row in enumerate(rows, start=1):
        where = f"{input_file}:{i}" if input_file else "--input"
        try:
            module_inputs(program, program.modules[module], row)
        except MissingInput as exc:
            close = difflib.get_close_matches(exc.name, exc.given, n=1, cutoff=0.6)
            hint = f" (is {close[0]!r} a misspelling of {exc.name!r}?)" if close else ""
            problems.append(f"{where}: {exc}{hint}")
        except RuntimeFailure as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"]
                                 if len(problems) > 20 else [])
        raise CLIError("\nerror: ".join(shown))


def run_context(program: ProgramIR, module: str, target: str, lm_name: str | None,
                no_cache: bool, cache_dir: str | None, transport: Any = None,
                also: list[str] | None = None) -> Any:
    """The run context of ``run`` and ``test``: the runner's trust (checked against the
    effects of ``module`` and the ``also`` modules before anything starts), the LM
    client, the task LM."""
    from lmpc.compiler.pipeline import make_run_ctx
    from lmpc.runtime.execute import default_task_lm

    trust = runner_trust(target)
    task_lm = default_task_lm(program, lm_name)
    for name in [module, *(also or [])]:
        require_effects(program, name, trust, task_lm)
    client = make_client(no_cache, cache_dir, transport, trust)
    return make_run_ctx(program, client, task_lm, trust=trust)


def _report(results: list[Any], input_file: str | None) -> int:
    from lmpc.runtime.execute import Prediction

    failed = 0
    for i, result in enumerate(results, start=1):
        if isinstance(result, Prediction):
            click.echo(json.dumps(result.outputs, ensure_ascii=False, default=str))
            continue
        failed += 1
        where = f"{input_file}:{i}" if input_file else "input"
        click.echo("null")
        click.echo(f"error: {where}: {_describe(result)}", err=True)
    return failed


def _describe(exc: BaseException) -> str:
    from lmpc.runtime.errors import RuntimeFailure
    from lmpc.runtime.lm_types import LMError

    if isinstance(exc, (RuntimeFailure, LMError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _rows(input_json: str | None, input_file: str | None) -> list[dict[str, Any]]:
    if input_json is not None:
        return [_row(input_json, "--input")]
    assert input_file is not None
    try:
        lines = Path(input_file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CLIError(f"cannot read {input_file}: {exc.strerror or exc}") from None
    rows = [_row(line, f"{input_file}:{n}") for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise CLIError(f"{input_file}: no input rows")
    return rows


def _row(text: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(row, dict):
        raise CLIError(f"{where}: an input must be a JSON object, got {type(row).__name__}")
    return row
