"""One type grammar: every spelling of a type (lmpc's, Python's, DSPy's) gives the same
TypeRef, in the block form and the DSPy string form alike; what flows into what; and
``lmpc fmt`` prints each spelling back as it was written."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_types import BOOL, FLOAT, INT, STR, tuple_of, union

from lmpc.compiler.check.program import check_text
from lmpc.compiler.check.typecheck import assignable, literal_fits
from lmpc.grammar.formatter import format_source
from lmpc.ir import TypeRef

PRELUDE = "enum Priority { low, high }\nclass Point { x: int  y: int }\n"

SPELLINGS = [
    # (as written, the TypeRef it means)
    ("str", "str"),
    ("Any", "any"),
    ("Optional[str]", "str?"),
    ("typing.Optional[str]", "str?"),
    ("str | None", "str?"),
    ("None | int", "int?"),
    ("Union[int, None]", "int?"),
    ("Optional[Optional[int]]", "int?"),
    ("str?", "str?"),
    ("Union[int, str]", "int | str"),
    ("int | str", "int | str"),
    ("Union[str, Union[int, str]]", "str | int"),
    ("str | (int | float) | None", "(str | int | float)?"),
    ("Union[int, str, None]", "(int | str)?"),
    ("Optional[Any]", "any"),
    ("Priority | None", "Priority?"),
    ("Point | str", "Point | str"),
    ("List[int]", "list[int]"),
    ("typing.List[str]", "list[str]"),
    ("list", "list[any]"),
    ("Dict[str, float]", "dict[str, float]"),
    ("dict[int, str]", "dict[int, str]"),
    ("Tuple[int, str]", "tuple[int, str]"),
    ("tuple[str, int]", "tuple[str, int]"),
    ("tuple[int, ...]", "list[int]"),
    ("Tuple", "list[any]"),
    ("Literal['a', 'b']", "'a' | 'b'"),
    ('Literal["a", "b"]', "'a' | 'b'"),
    ('"a" | "b"', "'a' | 'b'"),
    ("Literal['a'] | Literal['b', 'a']", "'a' | 'b'"),
    ("Literal[1, 2, True]", "1 | 2 | True"),
    ("Literal['x', None]", "'x'?"),
    ("'a' | int", "'a' | int"),
    ('("a" | "b")?', "('a' | 'b')?"),
    ("list[Union[str, int]]", "list[str | int]"),
    ("Tuple[int, Optional[float], list[str]]", "tuple[int, float?, list[str]]"),
    ("dict[str, list[Optional[Tuple[int, str]]]]", "dict[str, list[tuple[int, str]?]]"),
    ("Union[list[str], dict[str, Any]]", "list[str] | dict[str, any]"),
]


def _field_type(tmp_path: Path, source: str) -> str:
    program, diags, _ = check_text(PRELUDE + source, str(tmp_path / "t.lmp"))
    assert diags == [] and program is not None, [str(d) for d in diags]
    return str(program.signatures["S"].inputs[0].type)


@pytest.mark.parametrize(("written", "meant"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_spelling_means_one_type_in_both_signature_forms(
        tmp_path: Path, written: str, meant: str) -> None:
    block = _field_type(tmp_path, f"signature S {{ in x: {written}  out y: str }}")
    assert block == meant
    text = written.replace('"', '\\"')
    assert _field_type(tmp_path, f'signature S = "x: {text} -> y"') == meant


@pytest.mark.parametrize("written", [s[0] for s in SPELLINGS if s[0] != "str?"])
def test_fmt_keeps_the_spelling_the_user_wrote(written: str) -> None:
    src = (f"class C {{\n  x: {written}\n}}\ntype T = {written}\n"
           f"tool t(a: {written}) -> {written} = python \"m:f\"\n")
    assert format_source(src, "f.lmp") == src


def test_the_built_in_spellings_are_reserved(tmp_path: Path) -> None:
    _, diags, _ = check_text("enum Optional { a }\nclass List { x: int }\n",
                             str(tmp_path / "t.lmp"))
    assert [(d.code, d.message) for d in diags] == [
        ("E1101", "'Optional' is a built-in type"), ("E1101", "'List' is a built-in type")]


def test_a_users_own_class_wins_over_an_unsupported_dspy_name(tmp_path: Path) -> None:
    program, diags, _ = check_text("class Tool { name: str }\n"
                                   'signature S = "q -> t: Tool"\n', str(tmp_path / "t.lmp"))
    assert diags == [] and program is not None
    assert program.signatures["S"].outputs[0].type == TypeRef(kind="class", name="Tool")




@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        (INT, union(INT, STR), True),
        (BOOL, union(INT, FLOAT), False),
        (union(INT, FLOAT), FLOAT, True),  # every member fits float
        (union(INT, STR), INT, False),
        (union(INT, STR), STR, True),
        (union(INT, BOOL), union(BOOL, INT, FLOAT), True),
        # an optional flows into its non-optional type; none is caught at run time
        (TypeRef(kind="optional", args=[union(INT, FLOAT)]), union(FLOAT, INT), True),
        (tuple_of(INT, STR), tuple_of(FLOAT, STR), True),
        (tuple_of(INT, STR), tuple_of(INT), False),
        (tuple_of(INT, INT), TypeRef(kind="list", args=[FLOAT]), True),
        (TypeRef(kind="list", args=[INT]), tuple_of(INT, INT), False),
        (TypeRef(kind="literal", values=["a"]), union(INT, TypeRef(kind="literal",
                                                                 values=["a", "b"])), True),
    ],
)
def test_what_flows_into_unions_and_tuples(src: TypeRef, dst: TypeRef, ok: bool) -> None:
    assert assignable(src, dst, {}) is ok


def test_literals_written_in_source_fit_unions_and_tuples() -> None:
    assert literal_fits(3, union(STR, INT), {}) and literal_fits("x", union(INT, STR), {})
    assert not literal_fits(True, union(INT, FLOAT), {})
    assert literal_fits(["a", 1], tuple_of(STR, INT), {})
    assert not literal_fits(["a"], tuple_of(STR, INT), {})


def test_unions_and_tuples_survive_the_artifact(tmp_path: Path) -> None:
    from lmpc.compiler.artifact import Artifact, read_artifact, write_artifact

    source = ('signature S = "x: Union[int, str], y: Tuple[int, Optional[float]] -> '
              "z: Literal['a', 'b'] | None\"\nmodule M(x: int | str, y: tuple[int, float?]) -> "
              "(z: Optional[Literal['a', 'b']]) {\n  s = predict S(x = x, y = y)\n"
              "  return (z = s.z)\n}\n")
    program, diags, _ = check_text(source, str(tmp_path / "t.lmp"))
    assert diags == [] and program is not None
    path = write_artifact(Artifact(program="M", ir=program), tmp_path / "m.json")
    loaded = read_artifact(path).ir
    def types(ir):  # the artifact stores spans relative to the project, so compare types
        return ([f.type for s in ir.signatures.values() for f in s.inputs + s.outputs],
                [f.type for m in ir.modules.values() for f in m.inputs + m.outputs])

    assert types(loaded) == types(program)
    assert [str(f.type) for f in loaded.signatures["S"].inputs] == [
        "int | str", "tuple[int, float?]"]
