"""Evaluation of ``assert``/``suggest`` expressions over step outputs.

An expression is the parsed tree kept in ``ConstraintIR.expr``:

- ``{"op": "<=", "args": [a, b]}`` — comparisons ``== != < <= > >=``, ``and or not``,
  ``in``, ``not in``, ``contains``, ``matches`` (regex search), arithmetic ``+ - * /``;
- ``{"call": "len", "args": [a]}`` — the functions in ``FUNCTIONS``;
- ``{"ref": ["t", "reason"]}`` — a step output or module input;
- ``{"value": x}`` or a bare JSON scalar/list — a literal.

>>> evaluate({"op": "<=", "args": [{"call": "len", "args": [{"ref": ["t", "r"]}]}, 5]},
...          lambda path: "abc")
True
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from lmpc.ir import ConstraintIR
from lmpc.runtime.errors import RuntimeFailure

Resolve = Callable[[list[str]], Any]


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return b.lower() in a.lower()
    return b in a


def _matches(a: Any, pattern: Any) -> bool:
    return re.search(str(pattern), str(a)) is not None


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: _contains(b, a),
    "not in": lambda a, b: not _contains(b, a),
    "contains": _contains,
    "matches": _matches,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "strip": lambda s: str(s).strip(),
    "str": str,
    "int": int,
    "float": float,
    "abs": abs,
    "min": min,
    "max": max,
    "words": lambda s: len(str(s).split()),
    "startswith": lambda s, p: str(s).startswith(str(p)),
    "endswith": lambda s, p: str(s).endswith(str(p)),
    "contains": _contains,
    "matches": _matches,
}


def evaluate(expr: Any, resolve: Resolve) -> Any:
    """The value of ``expr``; refs are looked up with ``resolve(path)``."""
    if not isinstance(expr, dict):
        return expr
    if "ref" in expr:
        return resolve(list(expr["ref"]))
    if "value" in expr:
        return expr["value"]
    if "op" in expr:
        return _op(expr["op"], expr.get("args", []), resolve)
    if "call" in expr:
        fn = FUNCTIONS.get(expr["call"])
        if fn is None:
            raise RuntimeFailure(f"unknown function {expr['call']!r} in a constraint")
        return fn(*(evaluate(a, resolve) for a in expr.get("args", [])))
    raise RuntimeFailure(f"unsupported constraint expression {expr!r}")


def _op(op: str, args: list[Any], resolve: Resolve) -> Any:
    if op == "and":
        return all(evaluate(a, resolve) for a in args)
    if op == "or":
        return any(evaluate(a, resolve) for a in args)
    if op == "not":
        return not evaluate(args[0], resolve)
    fn = BINARY.get(op)
    if fn is None or len(args) != 2:
        raise RuntimeFailure(f"unsupported operator {op!r} in a constraint")
    return fn(evaluate(args[0], resolve), evaluate(args[1], resolve))


def holds(constraint: ConstraintIR, resolve: Resolve) -> bool:
    """True if the constraint holds; an expression that cannot be evaluated fails it."""
    try:
        return bool(evaluate(constraint.expr, resolve))
    except RuntimeFailure:
        raise
    except (TypeError, ValueError, ZeroDivisionError, KeyError, re.error):
        return False


def first_failure(constraints: list[ConstraintIR], resolve: Resolve) -> ConstraintIR | None:
    """The first constraint that does not hold, or None."""
    for constraint in constraints:
        if not holds(constraint, resolve):
            return constraint
    return None
