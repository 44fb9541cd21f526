"""lmpc — a compiler for language-model programs.

The Python API (``lmpc/api.py``): ``lmpc.load(path)`` gives a callable program,
``lmpc.build(path)`` builds one. They are imported on first use, so ``import lmpc``
(and every CLI command, which imports this package) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmpc.version import __version__

if TYPE_CHECKING:
    from lmpc.api import (
        Build,
        BuildError,
        Error,
        InputError,
        LoadError,
        NotAllowed,
        Program,
        RunError,
        build,
        load,
    )

__all__ = ["Build", "BuildError", "Error", "InputError", "LoadError", "NotAllowed", "Program",
           "RunError", "__version__", "build", "load"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from lmpc import api

        return getattr(api, name)
    raise AttributeError(f"module 'lmpc' has no attribute {name!r}")
