"""``lmpc test FILE_OR_ARTIFACT``: run the ``test`` blocks of a program, like a test runner.

A ``.lmp`` file runs its tests on the unoptimized program. An artifact keeps no tests
(only the built program), so ``--tests FILE.lmp`` takes the test blocks from a source
file and runs them against the artifact's optimized program. One line per test
(``PASS name`` / ``FAIL name: why (file:line)``), then ``N passed, M failed``; exit 1 if
any failed. An LM or runtime failure inside a test is a FAIL with its reason.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from lmpc.cli.common import CLIError, cli_errors, load_source, load_target, trust_options
from lmpc.cli.run import _describe, run_context
from lmpc.ir import ExpectIR, ProgramIR, Span, TestIR


@dataclass
class Outcome:
    """The outcome of one test block (``message`` says why it failed)."""

    name: str
    module: str
    passed: bool
    location: str
    message: str | None = None
    outputs: dict[str, Any] | None = None


@click.command("test")
@click.argument("target", metavar="FILE_OR_ARTIFACT")
@click.option("--program", "program_name", help="Run only the tests of this module.")
@click.option("--tests", "tests_file", type=click.Path(dir_okay=False),
              help="Take the test blocks from this .lmp file (for an artifact).")
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Override the task model.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LM cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where the cache lives.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"passed", "failed", "results"}.')
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@trust_options
@click.pass_context
def command(click_ctx: click.Context, target: str, program_name: str | None,
            tests_file: str | None, lm_name: str | None, no_cache: bool,
            cache_dir: str | None, as_json: bool, threads: int) -> None:
    """Run the test blocks of FILE_OR_ARTIFACT and report PASS / FAIL per test."""
    obj = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    with cli_errors():
        program, tests = _load_tests(target, tests_file, program_name)
        modules = sorted({t.module for t in tests})
        ctx = run_context(program, modules[0], target, lm_name, no_cache, cache_dir,
                          obj.get("transport"), also=modules[1:])
        results = _run_all(program, tests, ctx, threads)
    failed = sum(not r.passed for r in results)
    if as_json:
        click.echo(json.dumps({"passed": len(results) - failed, "failed": failed,
                               "results": [asdict(r) for r in results]},
                              ensure_ascii=False, default=str))
    else:
        for r in results:
            click.echo(f"PASS {r.name}" if r.passed else f"FAIL {r.name}: {r.message}")
        click.echo(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# ---------------------------------------------------------------- loading


def _load_tests(target: str, tests_file: str | None, program_name: str | None
                ) -> tuple[ProgramIR, list[TestIR]]:
    """The program to run and the tests to run on it (filtered to ``--program``)."""
    path = Path(target)
    if path.suffix == ".lmp":
        program = load_source(path)  # not load_target: a test file may hold several modules
    else:
        program, _, _ = load_target(target, program_name)
    tests = load_source(Path(tests_file)).tests if tests_file else program.tests
    if not tests:
        hint = "" if tests_file or path.suffix == ".lmp" else \
            " (an artifact keeps none: take them from a source with --tests FILE.lmp)"
        raise CLIError(f"{tests_file or target}: no test blocks{hint}")
    if program_name is not None:
        if program_name not in program.modules:
            known = ", ".join(sorted(program.modules)) or "none"
            raise CLIError(f"{target}: no module named {program_name!r} (modules: {known})")
        tests = [t for t in tests if t.module == program_name]
        if not tests:
            raise CLIError(f"{tests_file or target}: no test of module {program_name!r}")
    return program, _runnable(program, tests, target)


def _runnable(program: ProgramIR, tests: list[TestIR], target: str) -> list[TestIR]:
    """Keep the tests whose module the program has (an artifact holds only its own)."""
    kept = [t for t in tests if t.module in program.modules]
    skipped = len(tests) - len(kept)
    if not kept:
        wanted = ", ".join(sorted({t.module for t in tests}))
        raise CLIError(f"{target}: the tests call {wanted}, which it does not contain "
                       f"(modules: {', '.join(sorted(program.modules)) or 'none'})")
    if skipped:
        click.echo(f"note: skipped {skipped} test(s) of modules not in {target}", err=True)
    return kept


# ---------------------------------------------------------------- running


def _run_all(program: ProgramIR, tests: list[TestIR], ctx: Any, threads: int
             ) -> list[Outcome]:
    def one(test: TestIR) -> Outcome:
        return run_test(program, test, ctx.derive(attribution={"test": test.name}))

    if threads <= 1 or len(tests) <= 1:
        return [one(t) for t in tests]
    with ThreadPoolExecutor(max_workers=min(threads, len(tests))) as pool:
        return list(pool.map(one, tests))


def run_test(program: ProgramIR, test: TestIR, ctx: Any) -> Outcome:
    """Run one test block; a runtime or LM failure is a failed test, not an exception."""
    from lmpc.runtime.errors import RuntimeFailure
    from lmpc.runtime.execute import run_module
    from lmpc.runtime.lm_types import LMError

    where = _where(test.span)
    result = Outcome(name=test.name, module=test.module, passed=False, location=where)
    try:
        outputs = run_module(program, test.module, dict(test.inputs), ctx).outputs
    except (RuntimeFailure, LMError, OSError, ValueError, TypeError) as exc:
        result.message = f"{_describe(exc)} ({where})"
        return result
    result.outputs = outputs
    problems = [f"{p} ({_where(e.span or test.span)})"
                for e in test.expect if (p := check_expect(e, outputs)) is not None]
    result.passed = not problems
    result.message = "; ".join(problems) or None
    return result


def _where(span: Span | None) -> str:
    return f"{span.file}:{span.line}" if span else "?"


# ---------------------------------------------------------------- comparing


def check_expect(expect: ExpectIR, outputs: dict[str, Any]) -> str | None:
    """None if ``outputs`` meets the expectation, else why not.

    >>> check_expect(ExpectIR(field="p", op="==", value="high"), {"p": "low"})
    "p was 'low', expected == 'high'"
    >>> check_expect(ExpectIR(field="n", op=">=", value=4), {"n": "4.0"}) is None
    True
    """
    if expect.field not in outputs:
        return f"no output {expect.field!r} (outputs: {', '.join(outputs) or 'none'})"
    actual, op, expected = outputs[expect.field], expect.op, expect.value
    try:
        ok = _compare(actual, op, expected)
    except _NotComparable as exc:
        return f"{expect.field} was {_show(actual)}, expected {op} {_show(expected)}: {exc}"
    if ok:
        return None
    return f"{expect.field} was {_show(actual)}, expected {op} {_show(expected)}"


class _NotComparable(Exception):
    """The values cannot be compared with this operator (e.g. ``<`` on text)."""


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("==", "!="):
        return _equal(actual, expected) == (op == "==")
    if op == "contains":
        if isinstance(actual, (list, tuple, set)):
            return any(_equal(item, expected) for item in actual)
        if isinstance(actual, dict):
            return str(expected) in actual
        return str(expected) in _text(actual)
    if op == "matches":
        try:
            return re.search(str(expected), _text(actual)) is not None
        except re.error as exc:
            raise _NotComparable(f"bad regular expression: {exc}") from None
    a, b = _number(actual), _number(expected)
    if a is None or b is None:
        raise _NotComparable(f"{op} compares numbers")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _equal(actual: Any, expected: Any) -> bool:
    """Numbers numerically, enum values and other text as strings, the rest by value."""
    if _is_number(expected) or _is_number(actual):
        a, b = _number(actual), _number(expected)
        if a is not None and b is not None:
            return a == b
    if isinstance(actual, str) or isinstance(expected, str):
        return _text(actual) == _text(expected)
    return bool(actual == expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    """The string of a value; an Enum member is its value, not ``Cls.member``."""
    return str(getattr(value, "value", value))


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(_text(value))
    return repr(value)
