"""What DSPy makes of each string signature: the reference ``tests/test_dspy_signatures.py``
compares lmpc with.

The cases are DSPy 3.x's own string signatures (``tests/signatures/test_signature.py``,
``tests/signatures/test_custom_types.py``) and its documentation's examples
(``docs/learn/programming/signatures.md`` and the pages next to it), plus DSPy's special
types, which DSPy accepts and lmpc refuses with a code. For each one this script runs
DSPy's own ``dspy.Signature`` and records the field names, directions and types (as lmpc
``TypeRef`` JSON) and the instructions — or DSPy's error. Run it with DSPy installed:

    python tools/dspy_signature_reference.py      # rewrites tests/fixtures/dspy_signatures.json

The test re-runs DSPy on every case when DSPy is importable, so the file cannot drift
from what DSPy does.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "dspy_signatures.json"

# lmpc declarations standing for the Python classes DSPy's tests hand it (custom_types
# or the caller's scope): a pydantic model is a `class` in lmpc.
CUSTOM = {
    "CustomType": "class CustomType { value: str }",
    "NestedType": "class NestedType { value: str }",
    "GlobalCustomType": "class GlobalCustomType { value: str  notes: str }",
    "LocalType": "class LocalType { value: str }",
    "InnerType": "class InnerType { name: str  value: int }",
    "InnerTypeAlias": "type InnerTypeAlias = InnerType",
    "OffStackItem": "class OffStackItem { value: str }",
    "QueryResult": "class QueryResult { text: str  score: float }",
    "MyType": "class MyType { value: str }",
}

T = "tests/signatures/test_signature.py"
C = "tests/signatures/test_custom_types.py"
D = "docs/docs/learn/programming/signatures.md"

# (where DSPy has it, the signature, its instructions or None, lmpc declarations it
#  needs, the code lmpc answers with when it refuses one DSPy accepts, and why)
CASES: list[dict[str, Any]] = [
    {"where": f"{T}:54", "signature": "input1, input2 -> output"},
    {"where": f"{T}:62", "signature": "value -> value"},
    {"where": f"{T}:115", "signature": ""},
    {"where": f"{T}:124", "signature": "input1 -> output1", "instructions": "This is a test"},
    {"where": f"{T}:131", "signature": "a, b -> c"},
    {"where": f"{T}:151", "signature": "input2 -> output2"},
    {"where": f"{T}:208", "signature": "input -> output"},
    {"where": f"{T}:283", "signature": "input1: int, input2: str -> output: float"},
    {"where": f"{T}:294", "signature": "input_list: list[int], input_dict: dict[str, float] "
                                        "-> output_tuple: tuple[str, int]"},
    {"where": f"{T}:305", "signature": "input_opt: Optional[str], input_union: Union[int, None] "
                                        "-> output_union: Union[int, str]"},
    {"where": f"{T}:335", "signature": "input_any: Any -> output_any: Any"},
    {"where": f"{T}:344", "signature": "input_nested: list[Union[str, int]] -> output_nested: "
                                        "Tuple[int, Optional[float], list[str]]"},
    {"where": f"{T}:382", "signature": "input_complex: dict[str, list[Optional[Tuple[int, str]]]]"
                                        " -> output_complex: Union[list[str], dict[str, Any]]"},
    {"where": f"{T}:416", "signature": "input1: int, input2: dict[str, int] -> output1: "
                                        "list[str], output2: Union[int, str]"},
    {"where": f"{T}:450", "signature": "input: CustomType -> output: str",
     "declares": ["CustomType"]},
    {"where": f"{T}:467", "signature": "input: Path -> output: str", "lmpc_error": "E1213",
     "why": "a Python class from the caller's scope; lmpc takes text (use str)"},
    {"where": f"{T}:479", "signature": "input1: str | None, input2: None | int -> "
                                        "output_union: int | str"},
    {"where": f"{T}:511", "signature": "input: str | None -> output: int | str"},
    {"where": f"{T}:512", "signature": "input: Optional[str] -> output: Union[int, str]"},
    {"where": f"{T}:524", "signature": "input: str | (int | float) | None -> output: str"},
    {"where": f"{T}:599", "signature": "input: CustomType | None -> output: int | str",
     "declares": ["CustomType"]},
    {"where": f"{C}:33", "signature": "input: str -> output: NestedType",
     "declares": ["NestedType"]},
    {"where": f"{C}:42", "signature": "query: Container2.Query -> score: Container2.Score",
     "lmpc_error": "E1205", "why": "Python classes nested in a class; lmpc types are not "
                                   "nested (declare class Query and write Query)"},
    {"where": f"{C}:55", "signature": "name: str -> result: GlobalCustomType",
     "declares": ["GlobalCustomType"]},
    {"where": f"{C}:73", "signature": "input: str -> output: LocalType", "declares": ["LocalType"]},
    {"where": f"{C}:81", "signature": "input: str -> output: OuterContainer.InnerType",
     "lmpc_error": "E1205", "why": "a Python class nested in a class; lmpc types are not "
                                   "nested"},
    {"where": f"{C}:86", "signature": "input: str -> output: InnerTypeAlias",
     "declares": ["InnerType", "InnerTypeAlias"]},
    {"where": f"{C}:96", "signature": "input: str -> output: InnerType"},
    {"where": f"{C}:136", "signature": "query: str -> found: OffStackItem",
     "declares": ["OffStackItem"]},
    {"where": f"{C}:140", "signature": "query: str -> found: list[OffStackItem]",
     "declares": ["OffStackItem"]},
    {"where": f"{C}:144", "signature": "query: str -> found: OffStackItem",
     "instructions": "Find it.", "declares": ["OffStackItem"]},
    {"where": f"{D}:21", "signature": "question -> answer"},
    {"where": f"{D}:21", "signature": "question: str -> answer: str"},
    {"where": f"{D}:23", "signature": "sentence -> sentiment: bool"},
    {"where": f"{D}:25", "signature": "document -> summary"},
    {"where": f"{D}:29", "signature": "context: list[str], question: str -> answer: str"},
    {"where": f"{D}:31", "signature": "question, choices: list[str] -> reasoning: str, "
                                       "selection: int"},
    {"where": f"{D}:33", "signature": "text -> gist"},
    {"where": f"{D}:33", "signature": "long_context -> tldr"},
    {"where": f"{D}:40", "signature": "comment -> toxic: bool"},
    {"where": f"{D}:114 (its class signature, written as a string)",
     "signature": "sentence -> sentiment: Literal['sadness', 'joy', 'love', 'anger', 'fear', "
                  "'surprise']"},
    {"where": f"{D}:196", "signature": "query: str -> result: QueryResult",
     "declares": ["QueryResult"]},
    {"where": f"{D}:204", "signature": "query: MyContainer.Query -> score: MyContainer.Score",
     "lmpc_error": "E1205", "why": "Python classes nested in a class; lmpc types are not "
                                   "nested"},
    {"where": f"{D}:234", "signature": "number: int -> result: str"},
    {"where": "docs/docs/getting-started/expanding-signatures.md:24",
     "signature": "location, mood -> haiku, haiku_title"},
    {"where": "docs/docs/getting-started/expanding-signatures.md:68",
     "signature": "location, mood, contains_pun: bool -> haiku"},
    {"where": "docs/docs/getting-started/expanding-signatures.md:88",
     "signature": "location, mood -> haikus:list[str]"},
    {"where": "docs/docs/diving-deeper/signatures-in-depth.md:55",
     "signature": "subject: MyType -> output", "declares": ["MyType"]},
    {"where": "docs/docs/diving-deeper/signatures-in-depth.md:96",
     "signature": "location, season, mood -> haiku"},
    # DSPy's special types: DSPy accepts them, lmpc says it cannot (E1213)
    {"where": f"{D}:162 (dspy.Image)", "signature": "image_1: dspy.Image -> answer: str",
     "lmpc_error": "E1213", "why": "images: lmpc's models take text only"},
    {"where": "dspy.Audio", "signature": "clip: dspy.Audio -> transcript",
     "lmpc_error": "E1213", "why": "audio: text only"},
    {"where": "dspy.History", "signature": "question, history: dspy.History -> answer",
     "lmpc_error": "E1213", "why": "conversation history is not a field type in lmpc"},
    {"where": "dspy.Tool", "signature": "question, tools: list[dspy.Tool] -> answer",
     "lmpc_error": "E1213", "why": "tools are `tool` declarations given to react"},
    {"where": "dspy.ToolCalls", "signature": "question -> calls: dspy.ToolCalls",
     "lmpc_error": "E1213", "why": "tool calls are react's business"},
    {"where": "dspy.Code", "signature": "task -> code: dspy.Code",
     "lmpc_error": "E1213", "why": "use str"},
]


# ---------------------------------------------------------------- DSPy annotations -> TypeRef


def type_json(annotation: Any) -> dict[str, Any]:
    """The lmpc ``TypeRef`` (as JSON) standing for a Python annotation DSPy made."""
    import pydantic

    if annotation in (str, int, float, bool):
        return _ref(annotation.__name__)
    if annotation is typing.Any:
        return _ref("any")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [type_json(a) for a in args if a is not type(None)]
        inner = members[0] if len(members) == 1 else _ref("union", members)
        return _ref("optional", [inner]) if type(None) in args else inner
    if origin is typing.Literal:
        return {**_ref("literal"), "values": list(args)}
    if origin is list:
        return _ref("list", [type_json(args[0])])
    if origin is dict:
        return _ref("dict", [type_json(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _ref("list", [type_json(args[0])])
        return _ref("tuple", [type_json(a) for a in args])
    import dspy

    if isinstance(annotation, type) and (issubclass(annotation, dspy.Type) or
                                         annotation.__module__.startswith("dspy.")):
        raise ValueError(f"DSPy's own type {annotation.__name__} has no lmpc type")
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return {**_ref("class"), "name": annotation.__name__}
    raise ValueError(f"no lmpc type for {annotation!r}")


def _ref(kind: str, args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "args": args or [], "name": None, "values": []}


def _custom_types() -> dict[str, Any]:
    """The Python classes DSPy's tests resolve their custom names to."""
    import pydantic

    def model(model_name: str, **fields: Any) -> Any:
        return pydantic.create_model(model_name, **{k: (v, ...) for k, v in fields.items()})

    inner = model("InnerType", name=str, value=int)
    return {
        "CustomType": model("CustomType", value=str),
        "NestedType": model("NestedType", value=str),
        "GlobalCustomType": model("GlobalCustomType", value=str, notes=str),
        "LocalType": model("LocalType", value=str),
        "InnerTypeAlias": inner,
        "OffStackItem": model("OffStackItem", value=str),
        "QueryResult": model("QueryResult", text=str, score=float),
        "MyType": model("MyType", value=str),
        "Container2": type("Container2", (), {"Query": model("Query", text=str),
                                              "Score": model("Score", score=float)}),
        "OuterContainer": type("OuterContainer", (), {"InnerType": inner}),
        "MyContainer": type("MyContainer", (), {"Query": model("Query", text=str),
                                                "Score": model("Score", score=float)}),
    }


def run_dspy(case: dict[str, Any]) -> dict[str, Any]:
    """DSPy's fields and instructions for one case, or its error."""
    import dspy

    wanted = {name: t for name, t in _custom_types().items()
              if name in case["signature"]}
    try:
        sig = dspy.Signature(case["signature"], case.get("instructions"),
                             custom_types=wanted or None)
        fields = [[name, "in" if name in sig.input_fields else "out",
                   _safe_type(f.annotation)] for name, f in sig.fields.items()]
    except Exception as exc:  # DSPy refuses it: record why
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"instructions": sig.instructions, "fields": fields}


def _safe_type(annotation: Any) -> Any:
    try:
        return type_json(annotation)
    except ValueError:  # a DSPy type (dspy.Image, ...) or a Python one: no lmpc type
        if isinstance(annotation, type):
            return {"python": f"{annotation.__module__}.{annotation.__qualname__}"}
        return {"python": str(annotation)}


def reference() -> list[dict[str, Any]]:
    """Every case with DSPy's answer."""
    return [{**case, "dspy": run_dspy(case)} for case in CASES]


def main() -> None:
    import dspy

    cases = ",\n".join(json.dumps(c, ensure_ascii=False) for c in reference())
    text = f'{{"dspy_version": "{dspy.__version__}", "cases": [\n{cases}\n]}}\n'
    OUT.write_text(text, encoding="utf-8")  # one case a line: reviewable diffs
    print(f"wrote {OUT} ({len(CASES)} cases, DSPy {dspy.__version__})")


if __name__ == "__main__":
    main()
