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


# ---------------------------------------------------------------- unions and tuples


def union(*members: TypeRef) -> TypeRef:
    return TypeRef(kind="union", args=list(members))


def tuple_of(*items: TypeRef) -> TypeRef:
    return TypeRef(kind="tuple", args=list(items))


@pytest.mark.parametrize(
    ("value", "t", "expected"),
    [
        # as DSPy reads an LM's text for a union: JSON first, then the exact kind
        ("42", union(INT, STR), 42),
        ("42", union(STR, INT), 42),
        ("Paris", union(INT, STR), "Paris"),
        ("Answer: 3", union(INT, STR), "Answer: 3"),  # text is text when str is allowed
        ("Answer: 3", union(INT, BOOL), 3),  # ...and parsed when it is not
        ("2.5", union(INT, FLOAT), 2.5),
        ("true", union(BOOL, STR), True),
        ("high", union(PRIORITY, INT), "high"),
        ("3", union(PRIORITY, INT), 3),
        ('["a", "b"]', union(list_of(STR), STR), ["a", "b"]),
        ('{"street": "Main", "zip": 1}', union(ADDRESS, STR),
         {"street": "Main", "zip": 1, "unit": None}),
        (7, union(STR, INT), 7),  # a JSON value of the exact kind is kept as it is
        ("none", TypeRef(kind="optional", args=[union(INT, STR)]), None),
        ('["x", 2]', tuple_of(STR, INT), ["x", 2]),
        ("x, 2", tuple_of(STR, INT), ["x", 2]),
        (["x", "2"], tuple_of(STR, INT), ["x", 2]),
        ('{"1": "a", "2": "b"}', TypeRef(kind="dict", args=[INT, STR]), {1: "a", 2: "b"}),
    ],
)
def test_unions_and_tuples_coerce(value: object, t: TypeRef, expected: object) -> None:
    assert coerce(value, t, PROGRAM, "f") == expected


@pytest.mark.parametrize(
    ("value", "t", "message"),
    [
        ("urgent", union(PRIORITY, INT), "field 'f': expected one of: low, medium, high or "
                                         "an integer, got 'urgent'"),
        ('["x"]', tuple_of(STR, INT), "(1 items, not 2)"),
        ('["x", "y"]', tuple_of(STR, INT), "field 'f[1]': expected an integer"),
        ('{"a": 1}', TypeRef(kind="dict", args=[INT, INT]), "field 'f key': expected an integer"),
    ],
)
def test_unions_and_tuples_reject_precisely(value: object, t: TypeRef, message: str) -> None:
    with pytest.raises(CoercionError) as err:
        coerce(value, t, PROGRAM, "f")
    assert message in str(err.value)


def test_unions_and_tuples_in_prompts_and_budgets() -> None:
    assert describe(union(INT, PRIORITY), PROGRAM) == "an integer or one of: low, medium, high"
    assert describe(tuple_of(STR, INT), PROGRAM) == "a JSON array of 2 items: text, an integer"
    assert str(TypeRef(kind="optional", args=[union(INT, STR)])) == "(int | str)?"
    assert token_budget(union(BOOL, INT), PROGRAM) == token_budget(INT, PROGRAM)
    assert token_budget(tuple_of(INT, INT), PROGRAM) == 8 + 2 * (4 + token_budget(INT, PROGRAM))
