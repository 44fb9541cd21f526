"""Errors the runtime raises to its callers (evaluation counts them as failures).

Every message names what failed (module, predictor, field) so that a user can act on
it; none carries a secret.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of every runtime error: one example failed, the run goes on."""


class ParseFailure(RuntimeFailure):
    """An LM reply could not be parsed into the declared fields and types."""


class ConstraintFailed(RuntimeFailure):
    """An ``assert`` still failed after its retries."""


class ToolNotAllowed(RuntimeFailure):
    """A program wanted to import a Python tool that the caller did not allow."""


class MissingInput(RuntimeFailure):
    """A module was run without one of its required inputs."""

    def __init__(self, message: str, name: str, given: list[str]) -> None:
        super().__init__(message)
        self.name, self.given = name, given
