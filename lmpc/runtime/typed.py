"""Pydantic models of a program's types: what the Python API returns and what
``lmpc serve`` publishes as its OpenAPI schema.

Built from the IR alone (no class of the user's): an ``enum`` becomes a ``str`` Enum (so
a schema lists its values), a ``class`` a pydantic model, and a module its ``Input`` and
``Output`` models. Output models store enum *values* (``"billing"``, not
``Category.billing``), as ``lmpc run`` prints them.

>>> from lmpc.ir import EnumIR, FieldIR, ModuleIR, ProgramIR, TypeRef
>>> program = ProgramIR(enums={"Color": EnumIR(name="Color", values=["red", "blue"])},
...     modules={"Paint": ModuleIR(name="Paint",
...         inputs=[FieldIR(name="text", type=TypeRef(kind="str"))],
...         outputs=[FieldIR(name="color", type=TypeRef(kind="enum", name="Color"))])})
>>> models = TypeModels(program)
>>> Out = models.output_model("Paint")
>>> Out(color="red").color
'red'
>>> models.input_model("Paint").model_json_schema()["required"]
['text']
"""

from __future__ import annotations

import enum
import keyword
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from lmpc.ir import FieldIR, ProgramIR, TypeRef


class InputModel(BaseModel):
    """Base of every generated input model: unknown fields are an error (a misspelt
    input must not be dropped silently)."""

    model_config = ConfigDict(extra="forbid")


class OutputModel(BaseModel):
    """Base of every generated output model (and class model)."""

    model_config = ConfigDict(use_enum_values=True, extra="allow",
                              protected_namespaces=())

    def __getitem__(self, name: str) -> Any:  # pred["category"], as DSPy's Prediction
        return getattr(self, name)


class TypeModels:
    """The models of one program, built once per type and shared (so a schema names
    each enum and class once)."""

    def __init__(self, program: ProgramIR) -> None:
        self.program = program
        self._enums: dict[str, type[enum.Enum]] = {}
        self._classes: dict[str, type[BaseModel]] = {}

    # ------------------------------------------------------------ types

    def annotation(self, t: TypeRef) -> Any:
        """The Python annotation of an IR type."""
        kind = t.kind
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "list":
            return list[self.annotation(t.args[0])] if t.args else list[Any]
        if kind == "dict":
            key, value = (t.args + [TypeRef(kind="str"), TypeRef(kind="any")])[:2] \
                if len(t.args) < 2 else t.args
            return dict[self.annotation(key), self.annotation(value)]  # type: ignore[misc]
        if kind == "tuple":
            return tuple[tuple(self.annotation(a) for a in t.args)]  # type: ignore[misc]
        if kind == "optional":
            return Optional[self.annotation(t.args[0])]  # noqa: UP045 (a runtime value)
        if kind == "union":
            return Union[tuple(self.annotation(a) for a in t.args)]  # noqa: UP007
        if kind == "literal":
            return Literal[tuple(t.values)]  # type: ignore[valid-type]
        if kind == "enum":
            return self.enum(str(t.name))
        if kind == "class":
            return self.class_model(str(t.name))
        return Any

    def enum(self, name: str) -> type[enum.Enum]:
        if name not in self._enums:
            ir = self.program.enums.get(name)
            values = ir.values if ir is not None else []
            members = {_member(v, i): v for i, v in enumerate(values)}
            made = enum.Enum(name, members, type=str)  # type: ignore[misc]
            if ir is not None and ir.desc:
                made.__doc__ = ir.desc
            self._enums[name] = made
        return self._enums[name]

    def class_model(self, name: str) -> type[BaseModel]:
        if name not in self._classes:
            ir = self.program.classes.get(name)
            fields = ir.fields if ir is not None else []
            self._classes[name] = self._model(name, fields, OutputModel, output=True,
                                              doc=ir.desc if ir is not None else None)
        return self._classes[name]

    # ------------------------------------------------------------ modules

    def input_model(self, module: str) -> type[BaseModel]:
        """The inputs of ``module``: required unless optional or defaulted."""
        mod = self.program.modules[module]
        return self._model(f"{module}Input", mod.inputs, InputModel, output=False,
                           doc=f"The inputs of {module}.")

    def output_model(self, module: str) -> type[BaseModel]:
        """The outputs of ``module``."""
        mod = self.program.modules[module]
        outputs = mod.outputs or [FieldIR(name=n, type=TypeRef(kind="any"))
                                  for n in mod.returns]
        return self._model(f"{module}Output", outputs, OutputModel, output=True,
                           doc=mod.desc or f"The outputs of {module}.")

    def _model(self, name: str, fields: list[FieldIR], base: type[BaseModel], *,
               output: bool, doc: str | None) -> type[BaseModel]:
        spec: dict[str, Any] = {}
        for f in fields:
            annotation = self.annotation(f.type)
            if output:
                # a run may leave an output out (an optional the LM skipped): None, not
                # a validation error on data the runtime already checked
                default: Any = None
            elif f.default is not None:
                default = f.default
            elif f.type.kind == "optional":
                default = None
            else:
                default = ...
            spec[f.name] = (annotation, Field(default, description=f.desc))
        model = create_model(name, __base__=base, **spec)
        if doc:
            model.__doc__ = doc
        return model


_SCALARS: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "any": Any}


def _member(value: str, index: int) -> str:
    """An Enum member name for a value (values are identifiers in .lmp, but be safe)."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in str(value))
    if not name or name[0].isdigit() or keyword.iskeyword(name) or name.startswith("_"):
        name = f"v{index}_{name}"
    return name
