"""``lmpc report ARTIFACT [-o report.html]``: one self-contained HTML page about a build.

The page (``lmpc/report.py``) is made from the artifact alone — no LM, no data, no
code of the program — and opens with no network. Written atomically; the default
path is the artifact's with ``.html`` (``build/Router.json`` -> ``build/Router.html``).
matplotlib is imported only here (the ``report`` extra).
"""

from __future__ import annotations

from pathlib import Path

import click

from lmpc.cli.common import CLIError, cli_errors


@click.command("report")
@click.argument("target", metavar="ARTIFACT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Where to write the page (default: ARTIFACT with .html).")
def command(target: str, output: str | None) -> None:
    """Write an HTML report of a build: scores, trajectories, wins and losses, prompts."""
    with cli_errors():
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("lmpc report needs matplotlib: pip install 'lmpc[report]'"
                           ) from None
        from lmpc.compiler.artifact import atomic_write, looks_like_artifact, read_artifact
        from lmpc.report import render_report

        path = Path(target)
        if path.exists() and not looks_like_artifact(path):
            raise CLIError(f"{target}: lmpc report reads a built artifact, not source "
                           "(run lmpc build first)")
        artifact = read_artifact(path)
        out = Path(output) if output else path.with_suffix(".html")
        if out.resolve() == path.resolve():
            raise CLIError(f"{out}: the report would overwrite the artifact")
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, render_report(artifact).encode("utf-8"))
        click.echo(f"wrote {out}")
