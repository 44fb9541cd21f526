"""lmpc — a compiler for language-model programs."""

from lmpc.version import __version__

__all__ = ["__version__"]
