"""The compiler's version, recorded in every artifact (a leaf: imports nothing)."""

__version__ = "0.1.0"
