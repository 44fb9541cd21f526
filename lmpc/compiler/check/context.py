"""What every checking stage shares: the scope, the type resolver and the IR so far."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lmpc.compiler.check.scope import Scope
from lmpc.compiler.check.typecheck import TypeResolver, assignable, literal_fits
from lmpc.datafile import Record
from lmpc.grammar import ast
from lmpc.ir import ProgramIR, Span, TypeRef


@dataclass
class Ctx:
    """One check run. Stages read earlier stages' results from ``program``."""

    scope: Scope
    types: TypeResolver
    program: ProgramIR
    base_dir: str
    # columns of each dataset file (first record), for checking names against the data
    columns: dict[str, list[str] | None] = field(default_factory=dict)
    # every record of each dataset (all its files), for checking labels against types
    records: dict[str, list[Record]] = field(default_factory=dict)

    # enum name -> values, and every value of any enum (filled once enums are checked)
    enums: dict[str, list[str]] = field(default_factory=dict)
    enum_values: set[str] = field(default_factory=set)

    def index_enums(self) -> None:
        """Cache the enums for the many lookups of the dataflow checks."""
        self.enums = {name: e.values for name, e in self.program.enums.items()}
        self.enum_values = {v for values in self.enums.values() for v in values}

    def data_path(self, declared_in: str, path: str) -> tuple[str, str]:
        """(path on disk, path stored in the IR: relative to ``base_dir``) of a data file."""
        if os.path.isabs(path):
            return path, path
        on_disk = os.path.normpath(os.path.join(os.path.dirname(declared_in), path))
        stored = os.path.relpath(on_disk, self.base_dir or ".")
        return on_disk, stored.replace(os.sep, "/")

    def check_flow(self, src: TypeRef, dst: TypeRef, span: Span, what: str) -> None:
        """Report E1303 when a value of type ``src`` cannot flow into ``dst``."""
        if not assignable(src, dst, self.enums):
            self.scope.error("E1303", f"type mismatch: {what} expects {dst}, got {src}", span,
                             _mismatch_hint(src, dst))

    def check_literal(self, value: Any, dst: TypeRef, span: Span, what: str) -> None:
        """Report E1303 when a literal written in source is not a value of ``dst``."""
        if not literal_fits(value, dst, self.enums):
            hint = None
            if dst.kind == "enum":
                hint = f"{dst.name} is one of: " + ", ".join(self.enums.get(dst.name or "", []))
            shown = "none" if value is None else repr(value)
            self.scope.error("E1303", f"type mismatch: {what} expects {dst}, got {shown}",
                             span, hint)


def _mismatch_hint(src: TypeRef, dst: TypeRef) -> str | None:
    if src.kind == "str" and dst.kind in ("int", "float", "bool", "enum"):
        return f"declare the source field as {dst} so the model's answer is parsed as one"
    return None


@dataclass
class Env:
    """Names visible in a module body while checking it."""

    module: str
    inputs: dict[str, TypeRef]
    order: dict[str, ast.Step]  # every step of the body, to tell "later" from "unknown"
    outputs: dict[str, dict[str, TypeRef]] = field(default_factory=dict)  # checked steps
    index: dict[str, int] = field(default_factory=dict)
