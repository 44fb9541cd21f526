"""Coercion of LM text / JSON values to declared types, and type-sized prompts."""

from __future__ import annotations

import pytest

from lmpc.ir import ClassIR, EnumIR, FieldIR, ProgramIR, TypeRef
from lmpc.runtime.types import CoercionError, coerce, describe, token_budget

STR, INT, FLOAT, BOOL = (TypeRef(kind=k) for k in ("str", "int", "float", "bool"))
PRIORITY = TypeRef(kind="enum", name="Priority")
ADDRESS = TypeRef(kind="class", name="Address")
PROGRAM = ProgramIR(
    enums={"Priority": EnumIR(name="Priority", values=["low", "medium", "high"])},
    classes={
        "Address": ClassIR(
            name="Address",
            fields=[
                FieldIR(name="street", type=STR),
                FieldIR(name="zip", type=INT),
                FieldIR(name="unit", type=TypeRef(kind="optional", args=[STR])),
            ],
        )
    },
)


def list_of(t: TypeRef) -> TypeRef:
    return TypeRef(kind="list", args=[t])


@pytest.mark.parametrize(
    ("text", "t", "expected"),
    [
        (" hello \n", STR, "hello"),
        ("42.", INT, 42),
        ("1,234", INT, 1234),
        ("Answer: 7 apples", INT, 7),
        ("3.0", INT, 3),
        ("-2.5", FLOAT, -2.5),
        ("Yes.", BOOL, True),
        ("false", BOOL, False),
        ("'High'", PRIORITY, "high"),
        ("med", PRIORITY, "medium"),
        ("Low priority", PRIORITY, "low"),
        ("The ticket is urgent, so high", PRIORITY, "high"),
        ('["a", "b"]', list_of(STR), ["a", "b"]),
        ("- a\n- b\n", list_of(STR), ["a", "b"]),
        ("1. x\n2. y", list_of(STR), ["x", "y"]),
        ("1, 2, 3", list_of(INT), [1, 2, 3]),
        ("", list_of(STR), []),
        ("none", TypeRef(kind="optional", args=[INT]), None),
        ("5", TypeRef(kind="optional", args=[INT]), 5),
        ('{"a": 1}', TypeRef(kind="dict", args=[STR, INT]), {"a": 1}),
        ("a: 1\nb: 2", TypeRef(kind="dict", args=[STR, INT]), {"a": 1, "b": 2}),
        ("YES", TypeRef(kind="literal", values=["yes", "no"]), "yes"),
        ('```json\n{"street": "Main", "zip": "123"}\n```', ADDRESS,
         {"street": "Main", "zip": 123, "unit": None}),
    ],
)
def test_coerce_accepts(text: str, t: TypeRef, expected: object) -> None:
    assert coerce(text, t, PROGRAM, "f") == expected


def test_json_values_are_coerced_too() -> None:
    assert coerce(3, FLOAT, PROGRAM) == 3.0
    assert coerce([1, "2"], list_of(INT), PROGRAM) == [1, 2]
    assert coerce(2, TypeRef(kind="literal", values=[1, 2]), PROGRAM) == 2


@pytest.mark.parametrize(
    ("text", "t", "message"),
    [
        ("lots", INT, "field 'priority': expected an integer, got 'lots' (no number)"),
        ("2 or 3", INT, "several numbers"),
        ("2.5", INT, "has a fraction"),
        ("maybe", BOOL, "expected true or false, got 'maybe'"),
        ("urgent", PRIORITY, "expected Priority (one of: low, medium, high), got 'urgent'"),
        ("high or low", PRIORITY, "got 'high or low'"),
    ],
)
def test_coerce_rejects_with_precise_message(text: str, t: TypeRef, message: str) -> None:
    with pytest.raises(CoercionError) as err:
        coerce(text, t, PROGRAM, "priority")
    assert message in str(err.value)


def test_nested_class_error_names_the_path() -> None:
    with pytest.raises(CoercionError, match=r"field 'home.zip': expected an integer"):
        coerce('{"street": "Main", "zip": "abc"}', ADDRESS, PROGRAM, "home")
    with pytest.raises(CoercionError, match=r"'home.street'.*missing in Address"):
        coerce('{"zip": 1}', ADDRESS, PROGRAM, "home")
    with pytest.raises(CoercionError, match=r"'tags\[1\]': expected an integer"):
        coerce("[1, \"x\"]", list_of(INT), PROGRAM, "tags")


def test_describe_for_prompts() -> None:
    assert describe(PRIORITY, PROGRAM) == "one of: low, medium, high"
    assert describe(list_of(INT), PROGRAM) == "a JSON array of an integer"
    assert "street: str" in describe(ADDRESS, PROGRAM)
    assert describe(TypeRef(kind="optional", args=[BOOL])) == "true or false, or none"


def test_token_budget_is_sized_to_the_type() -> None:
    assert token_budget(PRIORITY, PROGRAM) <= 8
    assert token_budget(INT) <= 12
    assert token_budget(BOOL) < token_budget(INT) < token_budget(STR)
    assert token_budget(list_of(PRIORITY), PROGRAM) > token_budget(PRIORITY, PROGRAM)
