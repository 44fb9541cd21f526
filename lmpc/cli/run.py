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

from lmpc.ir import ProgramIR


class CLIError(Exception):
    """A user-facing error: printed as one line, exit 1."""


@click.command("run")
@click.argument("target", metavar="ARTIFACT_OR_FILE")
@click.option("--program", "program_name", help="Module to run (default: the built one).")
@click.option("--input", "input_json", metavar="JSON", help="One input as a JSON object.")
@click.option("--input-file", type=click.Path(dir_okay=False), help="Input rows, JSON lines.")
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--allow-tools", is_flag=True, help="Allow importing the program's Python tools.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
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
    allow_tools: bool,
    threads: int,
) -> None:
    """Run a program on --input or on each row of --input-file."""
    # Tests (and embedders) may hand in a transport: ``obj={"transport": ...}``.
    obj = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    if (input_json is None) == (input_file is None):
        raise click.UsageError("give exactly one of --input JSON or --input-file ROWS.jsonl")
    try:
        rows = _rows(input_json, input_file)
        program, module = _load(target, program_name)
        _check_rows(program, module, rows, input_file)
        ctx = _context(program, lm_name, no_cache, cache_dir, allow_tools, obj.get("transport"))
        from lmpc.runtime.execute import run_batch

        results = run_batch(program, module, rows, ctx, threads=threads)
    except CLIError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug must still not show a traceback to the user
        click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
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


def _load(target: str, program_name: str | None) -> tuple[ProgramIR, str]:
    path = Path(target)
    if not path.is_file():
        raise CLIError(f"{target}: no such file")
    if path.suffix == ".lmp":
        program = _check(path)
        module = program_name or _default_module(program, path)
    else:
        try:
            from lmpc.compiler.artifact import load_artifact
        except ImportError:
            raise CLIError(f"{target}: loading artifacts is not available yet") from None
        from lmpc.compiler.artifact import ArtifactError

        try:
            program, module = load_artifact(path)
        except ArtifactError as exc:
            raise CLIError(str(exc)) from None
        module = program_name or module
    if module not in program.modules:
        known = ", ".join(sorted(program.modules)) or "none"
        raise CLIError(f"{target}: no module named {module!r} (modules: {known})")
    return program, module


def _check(path: Path) -> ProgramIR:
    try:
        from lmpc.compiler.check.program import load_program
    except ImportError:
        raise CLIError(f"{path}: the checker is not available yet") from None
    from lmpc.diagnostics import render_all

    program, diagnostics, sources = load_program(path)
    errors = [d for d in diagnostics if getattr(d, "severity", "error") == "error"]
    if program is None or errors:
        raise CLIError(f"{path} has errors:\n" + render_all(errors or diagnostics, sources))
    return program


def _default_module(program: ProgramIR, path: Path) -> str:
    """The optimized module if there is one, else the only or the last module."""
    if program.optimizes:
        return program.optimizes[0].program
    if not program.modules:
        raise CLIError(f"{path}: declares no module to run")
    if len(program.modules) > 1:
        raise CLIError(
            f"{path}: declares several modules ({', '.join(program.modules)}); "
            "choose one with --program"
        )
    return next(iter(program.modules))


def _context(
    program: ProgramIR, lm_name: str | None, no_cache: bool, cache_dir: str | None,
    allow_tools: bool, transport: Any = None,
) -> Any:
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.execute import RunContext, default_task_lm
    from lmpc.runtime.lm import LitellmTransport, LMClient

    cache = None
    if not no_cache:
        cache = SQLiteCache(Path(cache_dir) / "cache.sqlite" if cache_dir else None)
    ctx = RunContext(
        client=LMClient(transport or LitellmTransport(), cache=cache),
        program_lms=dict(program.lms),
        task_lm=default_task_lm(program, lm_name),
        base_dir=Path(program.base_dir),
        allow_tools=allow_tools,
    )
    # best_of_n / refine steps score their attempts with a metric of the program
    from lmpc.eval.metrics import MetricError, reward_fns_for

    try:
        rewards = reward_fns_for(program, ctx.derive(attribution={"role": "reward"}),
                                 allow_python=allow_tools is True)
    except MetricError as exc:
        raise CLIError(str(exc)) from None
    return ctx.derive(reward_fns=rewards)
