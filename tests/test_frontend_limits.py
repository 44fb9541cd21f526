"""Input past what lmpc takes gives a coded diagnostic at its place, in bounded time and
memory — never a traceback, a hang or an internal error (the cases of issue 10, §6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lmpc.cli import main
from lmpc.compiler.artifact import Artifact, ArtifactError, read_artifact, write_artifact
from lmpc.compiler.check.program import check_text, load_program

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODULE = '''signature S = "q: str -> a: str"
module M(q: str) -> (a: str) {{
  s = predict S(q = q)
  assert {cond}, "x"
  return (a = s.a)
}}
'''


def _codes(text: str, tmp_path: Path) -> list[tuple[str, int, int]]:
    started = time.monotonic()
    _, diags, _ = check_text(text, str(tmp_path / "main.lmp"))
    assert time.monotonic() - started < 30
    return [(d.code, d.span.line, d.span.col) for d in diags]


@pytest.mark.parametrize(("what", "text", "code"), [
    ("1,000 chained or", MODULE.format(cond=" or ".join(["len(s.a) > 1"] * 1000)), "E0006"),
    ("1,000 chained and", MODULE.format(cond=" and ".join(["len(s.a) > 1"] * 1000)), "E0006"),
    ("1,000 not", MODULE.format(cond="not " * 1000 + "len(s.a) > 1"), "E0006"),
    ("1,000 ?", "type T = str" + "?" * 1000 + "\n", "E0006"),
    ("a union of 1,000", "type T = " + " | ".join(['"a"'] * 1000) + "\n", "E0006"),
    ("list[ 247 deep", "type T = " + "list[" * 247 + "str" + "]" * 247 + "\n", "E0006"),
    ("values 496 deep", 'test "t" {\n  M(q = ' + "[" * 496 + '"x"' + "]" * 496 +
     ')\n  expect a == "x"\n}\n', "E0006"),
    ("brackets 5,000 deep", MODULE.format(cond="(" * 5000 + "1" + ")" * 5000), "E0006"),
    ("an int of 4,301 digits", 'lm x = "m" { max_tokens: ' + "9" * 4301 + " }\n", "E0007"),
    ("a float past its range", 'lm x = "m" { temperature: 1' + "0" * 400 + ".0 }\n",
     "E0007"),
    # found by the fuzz test (tests/test_fuzz_limits.py): a limit inside a string signature
    ("a float past its range in a DSPy signature", 'signature S = "q: 1e999 -> a: str"\n',
     "E0004"),
    ("a DSPy signature nested deeply",
     'signature S = "q: ' + "list[" * 300 + "str" + "]" * 300 + ' -> a: str"\n', "E0004"),
])
def test_too_much_is_a_located_diagnostic(tmp_path: Path, what: str, text: str,
                                          code: str) -> None:
    found = _codes(text, tmp_path)
    assert len(found) == 1 and found[0][0] == code, (what, found)
    assert found[0][1] >= 1 and found[0][2] >= 1


def test_just_under_the_limits_is_fine(tmp_path: Path) -> None:
    text = MODULE.format(cond=" or ".join(["len(s.a) > 1"] * 40)) + \
        "type T = " + "list[" * 30 + "str" + "]" * 30 + "\n" + \
        'lm x = "m" { max_tokens: ' + "9" * 30 + " }\n"
    assert _codes(text, tmp_path) == []


def test_an_import_chain_of_986_files(tmp_path: Path) -> None:
    for i in range(986):
        (tmp_path / f"f{i}.lmp").write_text(f'import "f{i + 1}.lmp"\n' if i < 985
                                            else "enum E { a }\n")
    started = time.monotonic()
    program, diags, _ = load_program(tmp_path / "f0.lmp")
    assert time.monotonic() - started < 30
    assert program is None and [d.code for d in diags] == ["E1004"]
    assert diags[0].span.file.endswith("f63.lmp") and diags[0].span.line == 1


def _in_a_subprocess(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run lmpc in its own process: a hang fails the test instead of stopping the suite."""
    env = {**os.environ, "LMPC_TRUST_FILE": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "lmpc", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.mark.parametrize("command", ["check", "fmt", "run", "show"])
def test_a_fifo_and_dev_zero_are_refused_not_read(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "pipe.lmp"
    os.mkfifo(fifo)
    for target in (str(fifo), "/dev/zero"):
        extra = ["--input", "{}"] if command == "run" else []
        result = _in_a_subprocess([command, target, *extra])
        assert result.returncode == 1, result.stderr
        assert "not a regular file" in result.stderr and "Traceback" not in result.stderr
        if command in ("check", "fmt"):
            assert f"{target}:1:1: error[E1003]" in result.stderr


def test_fmt_and_check_report_unreadable_files_with_a_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lmp"
    bad.write_bytes(b"enum E { a }\n// caf\xe9\n")
    for command in ("fmt", "check"):
        result = CliRunner().invoke(main, [command, str(bad)])
        assert result.exit_code == 1
        assert f"{bad}:2:7: error[E1003]" in result.output, result.output
        assert "not UTF-8 at line 2, column 7" in result.output
    huge = tmp_path / "huge.lmp"
    huge.write_text("// " + "x" * (9 << 20) + "\n")
    result = CliRunner().invoke(main, ["check", str(huge)])
    assert result.exit_code == 1 and "error[E1003]" in result.output
    assert "too large" in result.output


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.lmp"
    path.write_bytes("\ufeffenum E { a }\n".encode())
    program, diags, _ = load_program(path)
    assert diags == [] and program is not None and "E" in program.enums


def test_a_long_line_is_shown_around_the_caret(tmp_path: Path) -> None:
    text = 'lm x = "m" { a: 1, ' + ", ".join(f"k{i}: {i}" for i in range(5000)) + " @ }\n"
    path = tmp_path / "long.lmp"
    path.write_text(text)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1 and "error[E0003]" in result.output
    shown = result.output.splitlines()[2]
    assert len(shown) < 200 and "@" in shown and shown.startswith("1 | …")


# ---------------------------------------------------------------- artifacts


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    program, diags, _ = load_program(EXAMPLES / "classify.lmp")
    assert program is not None, diags
    return write_artifact(Artifact(program="Router", ir=program), tmp_path / "a.json")


def _tampered(artifact: Path, change: Any) -> Path:
    data = json.loads(artifact.read_text())
    change(data)
    artifact.write_text(json.dumps(data))
    return artifact


@pytest.mark.parametrize(("what", "change", "message"), [
    ("a step naming a missing predictor", lambda d: d["ir"]["modules"]["Router"]["steps"][0]
     .update(predictor="Router.zzz"), "no predictor 'Router.zzz'"),
    ("a garbage knn option", lambda d: d["ir"]["predictors"]["Router.c"]["options"].update(
        knn={"k": "many", "examples": 3}), "options.knn"),
    ("a knn option that is not an object", lambda d: d["ir"]["predictors"]["Router.c"]
     ["options"].update(knn=[1, 2]), "options.knn"),
    ("a return from nowhere", lambda d: d["ir"]["modules"]["Router"]["returns"]["category"]
     .update(path=["nope", "x"]), "reads 'nope'"),
    ("an unknown enum", lambda d: d["ir"]["enums"].clear(), "no enum 'Category'"),
    ("react options of the wrong kind", lambda d: d["ir"]["predictors"]["Router.c"].update(
        kind="react", options={"tools": "all", "max_iters": -1}), "options.max_iters"),
    # found by the fuzz test: a string where lmpc computes with a number
    ("an LM setting of the wrong type", lambda d: d["ir"]["lms"]["local"]["settings"].update(
        max_tokens="0"), "max_tokens: '0' is not an int"),
    ("20 MB of instructions", lambda d: d["ir"]["predictors"]["Router.c"]["signature"].update(
        instructions="word " * 4_000_000), "20,000,000 characters"),
])
def test_a_broken_artifact_is_refused_on_load(artifact: Path, what: str, change: Any,
                                              message: str) -> None:
    _tampered(artifact, change)
    with pytest.raises(ArtifactError, match="invalid artifact") as err:
        read_artifact(artifact)
    assert message in str(err.value), (what, str(err.value))
    for command in (["show", str(artifact)], ["run", str(artifact), "--input", "{}"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and message in result.stderr
        assert "internal error" not in result.stderr


def test_an_artifact_nested_100000_deep(artifact: Path) -> None:
    artifact.write_text('{"schema_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ArtifactError, match="nested more than 200 levels deep"):
        read_artifact(artifact)
    artifact.write_text('{"schema_version": 1, "x": ' + "[" * 300 + "]" * 300 + "}")
    with pytest.raises(ArtifactError, match=r"nested more than 200 levels deep \(at x"):
        read_artifact(artifact)


def test_an_artifact_that_is_not_a_regular_file_or_not_utf8(tmp_path: Path) -> None:
    fifo = tmp_path / "a.json"
    os.mkfifo(fifo)
    with pytest.raises(ArtifactError, match="not a regular file"):
        read_artifact(fifo)
    bad = tmp_path / "b.json"
    bad.write_bytes(b'{"schema_version": 1,\n "program": "\xff"}')
    with pytest.raises(ArtifactError, match=r"b.json:2:14: cannot read: not UTF-8"):
        read_artifact(bad)
