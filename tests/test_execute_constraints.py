"""The constraint expression evaluator (the trees the checker produces)."""

from __future__ import annotations

import pytest

from lmpc.ir import ConstraintIR
from lmpc.runtime.constraints import evaluate, first_failure, holds
from lmpc.runtime.errors import RuntimeFailure

SCOPE = {("r", "stars"): 4, ("r", "sentiment"): "positive", ("s", "summary"): "Great kettle."}


def resolve(path: list[str]) -> object:
    return SCOPE[tuple(path)]


def ref(*path: str) -> dict:
    return {"ref": list(path)}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"op": "<=", "args": [{"call": "len", "args": [ref("s", "summary")]}, 200]}, True),
        ({"op": "and", "args": [{"op": ">=", "args": [ref("r", "stars"), 1]},
                                {"op": "<=", "args": [ref("r", "stars"), 5]}]}, True),
        ({"op": "not", "args": [{"op": "and", "args": [
            {"op": "==", "args": [ref("r", "sentiment"), "positive"]},
            {"op": "<=", "args": [ref("r", "stars"), 2]}]}]}, True),
        ({"op": "contains", "args": [ref("s", "summary"), "KETTLE"]}, True),
        ({"op": "matches", "args": [ref("s", "summary"), r"^Great\b"]}, True),
        ({"op": "in", "args": [{"value": "tea"}, ref("s", "summary")]}, False),
        ({"op": "==", "args": [{"op": "*", "args": [ref("r", "stars"), 2]}, 8]}, True),
        ({"call": "words", "args": [ref("s", "summary")]}, 2),
    ],
)
def test_evaluate(expr: dict, expected: object) -> None:
    assert evaluate(expr, resolve) == expected


def test_type_errors_fail_the_constraint_and_unknowns_are_errors() -> None:
    bad = ConstraintIR(kind="assert", expr={"op": "<", "args": [ref("s", "summary"), 3]},
                       message="m")
    assert holds(bad, resolve) is False
    ok = ConstraintIR(kind="suggest", expr={"op": ">", "args": [ref("r", "stars"), 3]},
                      message="m")
    assert first_failure([ok, bad], resolve) is bad
    with pytest.raises(RuntimeFailure, match="unknown function 'shout'"):
        evaluate({"call": "shout", "args": []}, resolve)
    with pytest.raises(RuntimeFailure, match="unsupported operator '\\*\\*'"):
        evaluate({"op": "**", "args": [1, 2]}, resolve)


def test_the_runtime_evaluates_exactly_the_functions_the_ir_allows():
    from lmpc.ir import CONSTRAINT_FUNCTIONS
    from lmpc.runtime.constraints import FUNCTIONS

    assert sorted(FUNCTIONS) == sorted(CONSTRAINT_FUNCTIONS)
