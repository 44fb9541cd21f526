"""``lmpc fmt [--check] FILE...``: canonical formatting, comments kept, idempotent.

Exit 0 when every file is formatted (or, with ``--check``, already canonical); exit 1
when a file has syntax errors (printed as diagnostics) or, with ``--check``, would
change; exit 2 on usage errors (click).
"""

from __future__ import annotations

from pathlib import Path

import click

from lmpc.diagnostics import render_all
from lmpc.files import SOURCE_LIMIT, FileProblem, read_text
from lmpc.grammar.formatter import FormatError, format_source


def _read(path: Path) -> str | None:
    try:
        return read_text(path, SOURCE_LIMIT)
    except FileProblem as err:  # the same code and place as `lmpc check` gives
        where = f"{path}:{err.line or 1}:{err.col or 1}"
        click.echo(f"{where}: error[E1003]: cannot read '{path}': {err}", err=True)
        return None


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        click.echo(f"{path}: error: cannot write file: {err}", err=True)
        return False
    return True


def format_one(path: Path, check: bool) -> bool:
    """Format (or check) one file; True when it is fine."""
    text = _read(path)
    if text is None:
        return False
    try:
        formatted = format_source(text, str(path))
    except FormatError as err:
        click.echo(render_all(err.diagnostics, {str(path): text}), err=True)
        return False
    if formatted == text:
        return True
    if check:
        click.echo(f"would reformat {path}")
        return False
    if not _write(path, formatted):
        return False
    click.echo(f"reformatted {path}", err=True)
    return True


@click.command(name="fmt")
@click.option("--check", is_flag=True, help="Only report files that would change (exit 1).")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def command(check: bool, files: tuple[Path, ...]) -> None:
    """Format .lmp files canonically, keeping comments."""
    results = [format_one(path, check) for path in files]
    if not all(results):
        raise SystemExit(1)
