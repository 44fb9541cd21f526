"""The command line (DESIGN.md §5). The only part of lmpc that writes to the terminal.

Each command lives in its own module; this file only assembles the group so that
``lmpc check`` and ``lmpc fmt`` never import litellm.
"""

from __future__ import annotations

import importlib
import signal
import threading
from types import FrameType

import click

# command name -> module under lmpc.cli that defines a click command named `command`
COMMANDS = {
    "check": "check",
    "fmt": "fmt",
    "run": "run",
    "build": "build",
    "eval": "eval",
    "show": "show",
    "diff": "diff",
    "test": "test",
    "serve": "serve",
    "report": "report",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (keeps `check` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        try:
            mod = importlib.import_module(f"lmpc.cli.{module}")
        except ModuleNotFoundError:
            return None
        return mod.command


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it unwinds exactly like Ctrl-C does: temp
    files removed, no half artifact, one line on stderr."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@click.group(cls=LazyGroup)
@click.version_option(package_name="lmpc")
def main() -> None:
    """lmpc — compile language-model programs."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


if __name__ == "__main__":  # pragma: no cover
    main()
