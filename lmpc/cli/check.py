"""``lmpc check FILE...``: parse and check; diagnostics on stderr.

Each diagnostic is ``FILE:LINE:COL: error[CODE]: message`` with the source line, a
caret and a ``help:`` line when there is a suggestion. Exit 0 when every file is
fine (warnings allowed), 1 when any has an error, 2 on usage errors (click).
Imports nothing that loads litellm, so it starts fast.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from lmpc.compiler.check.program import load_program
from lmpc.diagnostics import Diagnostic, render, render_all
from lmpc.ir import Span

log = logging.getLogger("lmpc")


def check_one(path: Path, quiet: bool) -> bool:
    """Check one file and print its diagnostics; True when it has no error."""
    try:
        _, diagnostics, sources = load_program(path)
    except Exception as exc:  # load_program never raises; this guards against a bug
        log.debug("checker crashed", exc_info=True)
        diag = Diagnostic("E1999", f"internal checker error: {exc!r}",
                          Span(file=str(path), line=1, col=1))
        click.echo(render(diag, None), err=True)
        return False
    if diagnostics:
        click.echo(render_all(diagnostics, sources), err=True)
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if not quiet:
        warnings = len(diagnostics) - errors
        status = "ok" if not errors else f"{errors} error{'s' if errors != 1 else ''}"
        extra = f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
        click.echo(f"{path}: {status}{extra}", err=True)
    return errors == 0


@click.command(name="check")
@click.option("-q", "--quiet", is_flag=True, help="Print only diagnostics, no summary line.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def command(quiet: bool, files: tuple[Path, ...]) -> None:
    """Parse and check .lmp files: names, types, dataflow, data, optimizers."""
    results = [check_one(path, quiet) for path in files]
    if not all(results):
        raise SystemExit(1)
