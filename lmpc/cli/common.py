"""What every command shares: loading a program, the runner's trust, the LM client, and
turning failures into one clear line.

The trust flags are the same on every command that loads a program (run, eval, test,
show, build), and so is what they mean (docs/trust.md): ``--allow-tools`` /
``--allow-tool NAME`` (Python code), ``--allow-endpoint URL`` (where ``env.NAME``
secrets may go), ``--allow-path DIR`` (files outside the project). Each command checks
the effects it is about to cause before it starts, and refuses with every blocked one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from lmpc.ir import LMIR, ProgramIR

log = logging.getLogger("lmpc")
F = TypeVar("F", bound=Callable[..., Any])
_TRUST_KEY = "lmpc.trust_flags"


class CLIError(Exception):
    """A user-facing error: printed as one line (or a rendered diagnostic), exit 1."""


# ---------------------------------------------------------------- loading


def load_source(path: Path) -> ProgramIR:
    """Parse and check a ``.lmp`` file; diagnostics become a ``CLIError``."""
    _require_file(path)
    from lmpc.compiler.check.program import load_program
    from lmpc.diagnostics import render_all

    program, diagnostics, sources = load_program(path)
    errors = [d for d in diagnostics if getattr(d, "severity", "error") == "error"]
    if program is None or errors:
        raise CLIError(render_all(errors or diagnostics, sources))
    return program


def load_target(target: str, program_name: str | None) -> tuple[ProgramIR, str, Any]:
    """A ``.lmp`` source (the unoptimized program) or an artifact: (IR, module, artifact)."""
    from lmpc.compiler.artifact import looks_like_artifact, read_artifact

    path = Path(target)
    _require_file(path)
    artifact = None
    if looks_like_artifact(path):
        artifact = read_artifact(path)
        program, module = artifact.ir, program_name or artifact.program
    else:
        program = load_source(path)
        module = program_name or default_module(program, path)
    if module not in program.modules:
        known = ", ".join(sorted(program.modules)) or "none"
        raise CLIError(f"{target}: no module named {module!r} (modules: {known})")
    return program, module, artifact


def _require_file(path: Path) -> None:
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if not path.is_file():  # a FIFO would block, /dev/zero would fill memory
        raise CLIError(f"{path}: is not a regular file")


def default_module(program: ProgramIR, path: Path) -> str:
    """The optimized module if there is one, else the only module."""
    if program.optimizes:
        return program.optimizes[0].program
    if len(program.modules) == 1:
        return next(iter(program.modules))
    if not program.modules:
        raise CLIError(f"{path}: declares no module")
    raise CLIError(f"{path}: declares several modules ({', '.join(program.modules)}); "
                   "choose one with --program")


# ---------------------------------------------------------------- trust


def trust_options(command: F) -> F:
    """The trust flags, identical on every command; read back with ``runner_trust``."""

    def keep(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
        def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
            ctx.meta.setdefault(_TRUST_KEY, {})[name] = value
            return value
        return callback

    options = [
        click.option("--allow-tools", is_flag=True, expose_value=False,
                     callback=keep("all_tools"),
                     help="Allow the program's Python code: tools, Python metrics, reducers."),
        click.option("--allow-tool", "allow_tool", multiple=True, metavar="NAME",
                     expose_value=False, callback=keep("tools"),
                     help="Allow one tool (or metric) by name or import path."),
        click.option("--allow-endpoint", multiple=True, metavar="URL", expose_value=False,
                     callback=keep("endpoints"),
                     help="An endpoint that may receive env.NAME secrets."),
        click.option("--allow-path", multiple=True, metavar="DIR", expose_value=False,
                     callback=keep("paths"),
                     type=click.Path(file_okay=False),
                     help="A folder outside the project the program may read files from."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def runner_trust(target: str | Path) -> Any:
    """The trust of this command's flags, environment and the user's config, for the
    program read from ``target``."""
    from lmpc.runtime.trust import Trust

    flags = click.get_current_context().meta.get(_TRUST_KEY, {})
    trust = Trust.configured(allow_tools=bool(flags.get("all_tools")),
                             tools=flags.get("tools") or (),
                             endpoints=flags.get("endpoints") or (),
                             paths=flags.get("paths") or ())
    return trust.for_file(target)


def require_effects(program: ProgramIR, module: str, trust: Any, task_lm: LMIR, *,
                    metric: str | None = None, datasets: bool = False,
                    kinds: tuple[str, ...] = ("lm", "file", "code")) -> None:
    """Refuse to start when the run would cause an effect (of ``kinds``) the trust does
    not allow."""
    from lmpc.runtime.effects import blocked, program_effects

    refused = [e for e in blocked(program_effects(program, module, trust, task_lm,
                                                  metric=metric, datasets=datasets))
               if e.kind in kinds]
    if refused:
        lines = [f"  {e.line()}" for e in refused]
        raise CLIError("refusing to run: the program would do what you have not allowed "
                       "(see docs/trust.md)\n" + "\n".join(lines))


# ---------------------------------------------------------------- the LM client


def make_client(no_cache: bool, cache_dir: str | None, transport: Any = None,
                trust: Any = None) -> Any:
    """The LM client: litellm (or a test's transport) behind the persistent cache.

    The cache is ``--cache-dir``'s SQLite file if given, else the one ``LMPC_CACHE_URL``
    names (``postgresql://...``: a cache a team shares), else the default SQLite file.
    """
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.cache_url import open_cache
    from lmpc.runtime.lm import LitellmTransport, LMClient

    url = os.environ.get("LMPC_CACHE_URL", "").strip()
    if no_cache:
        cache = None
    elif cache_dir:
        cache = SQLiteCache(Path(cache_dir) / "cache.sqlite")
    else:
        cache = open_cache(url) if url else SQLiteCache()
    return LMClient(transport or LitellmTransport(trust=trust), cache=cache)


# ---------------------------------------------------------------- errors


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: reported as one line, never a traceback."""
    from lmpc.compiler.artifact import ArtifactError
    from lmpc.compiler.passes._demos import PassError
    from lmpc.compiler.pipeline import PipelineError
    from lmpc.eval.data import DataError
    from lmpc.eval.metrics import MetricError
    from lmpc.runtime.cache import CacheError
    from lmpc.runtime.errors import RuntimeFailure
    from lmpc.runtime.lm_types import LMError

    return (CLIError, ArtifactError, PassError, PipelineError, DataError, MetricError,
            RuntimeFailure, LMError, CacheError, OSError)


@contextmanager
def cli_errors(cleanup: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Turn any failure into one clear line on stderr and exit 1 (never a traceback)."""
    try:
        yield
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (raised as a KeyboardInterrupt)
        cleanup()
        what = "terminated" if type(exc).__name__ == "Terminated" else "interrupted"
        click.echo(f"\n{what}: no artifact written (finished LM calls are cached)", err=True)
        sys.exit(1)
    except user_errors() as exc:
        cleanup()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RecursionError:
        cleanup()
        click.echo("error: the input is nested too deeply to process", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug in lmpc: still one line; details in the debug log
        cleanup()
        log.debug("internal error", exc_info=True)
        click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
