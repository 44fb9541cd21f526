"""``lmpc serve ARTIFACT...``: serve built programs over HTTP (FastAPI on uvicorn).

Every artifact (or ``.lmp`` file) is loaded as ``lmpc run`` loads it, with the same
trust flags, and checked before the server starts: a program that would do what the
runner has not allowed is refused, and nothing listens. See ``lmpc/serve.py`` for the
routes and limits. FastAPI and uvicorn are imported only here (the ``serve`` extra).
"""

from __future__ import annotations

import click

from lmpc.cli.common import CLIError, cli_errors, runner_trust, trust_options


@click.command("serve")
@click.argument("targets", metavar="ARTIFACT...", nargs=-1, required=True,
                type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--workers", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Runs in flight at once (more requests wait).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1), default=120.0,
              show_default=True, help="Seconds a request may take before it answers 504.")
@click.option("--max-body", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Largest request body, in bytes (larger: 413).")
@click.option("--max-batch", type=click.IntRange(1), default=256, show_default=True,
              help="Most rows in one batch request.")
@click.option("--drain", "drain_s", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to let requests in flight finish.")
@trust_options
def command(targets: tuple[str, ...], host: str, port: int, lm_name: str | None,
            no_cache: bool, cache_dir: str | None, workers: int, timeout_s: float,
            max_body: int, max_batch: int, drain_s: float) -> None:
    """Serve each program at POST /NAME (and /NAME/batch); /docs shows the schema."""
    with cli_errors():
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:
            raise CLIError(f"lmpc serve needs FastAPI and uvicorn ({exc.name} is missing): "
                           "pip install 'lmpc[serve]'") from None
        import lmpc
        from lmpc.serve import serve

        programs = []
        for target in targets:
            try:
                programs.append(lmpc.load(target, lm=lm_name, cache=not no_cache,
                                          cache_dir=cache_dir, trust=runner_trust(target),
                                          threads=workers))
            except lmpc.Error as exc:
                raise CLIError(str(exc)) from None
        names = [p.name for p in programs]
        if len(set(names)) != len(names):
            raise CLIError(f"two artifacts serve the same program name ({', '.join(names)})")
        for program in programs:
            click.echo(f"serving {program.name} at POST http://{host}:{port}/{program.name} "
                       f"({program.task_lm.model})", err=True)
        try:
            serve(programs, host=host, port=port, drain_s=drain_s, workers=workers,
                  timeout_s=timeout_s, max_body=max_body, max_batch=max_batch)
        except KeyboardInterrupt:  # uvicorn re-raises SIGTERM/SIGINT once it has drained
            pass
        click.echo("lmpc serve: stopped (requests in flight were finished)", err=True)
