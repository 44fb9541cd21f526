"""The examples check cleanly, their IR round-trips through JSON, and `lmpc check` works."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from lmpc.cli import main
from lmpc.compiler.check.program import load_program
from lmpc.ir import ProgramIR

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = sorted(EXAMPLES.glob("*.lmp"))


def test_there_are_the_four_examples() -> None:
    names = {f.name for f in FILES}
    assert {"classify.lmp", "rag.lmp", "agent.lmp", "pipeline.lmp", "common.lmp"} <= names


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_example_checks_and_round_trips(path: Path) -> None:
    program, diags, _ = load_program(path)
    # pipeline.lmp tunes instructions with the embedded model as prompt_model, on purpose
    # (no key needed); the checker says that model writes few usable instructions
    expected = ["W1606"] if path.name == "pipeline.lmp" else []
    assert [d.code for d in diags] == expected and program is not None
    assert ProgramIR.model_validate_json(program.model_dump_json()) == program


def test_examples_use_different_pipelines() -> None:
    """Every optimize block the examples define shows a pipeline no other block does
    (blocks an example imports count once, in the file that defines them)."""
    own = []
    for path in FILES:
        program, _, _ = load_program(path)
        assert program is not None
        own += [tuple(p.name for p in opt.passes) for opt in program.optimizes
                if opt.span is not None and Path(opt.span.file).name == path.name]
    assert len(own) >= len(FILES) - 1  # every example but the shared common.lmp has one
    assert len(set(own)) == len(own), own


def test_classify_is_the_main_demo() -> None:
    program, _, _ = load_program(EXAMPLES / "classify.lmp")
    assert program is not None
    assert program.lms["local"].model == "local/gemma-3-270m"
    (opt,) = program.optimizes
    assert [p.name for p in opt.passes] == ["knn_fewshot"]
    ds = program.datasets[opt.dataset]
    assert (ds.split.train, ds.split.val, ds.split.test) == (40, 80, 80)
    rows = [json.loads(line) for line in (EXAMPLES / ds.path).read_text().splitlines()]
    assert len(rows) == 200
    assert {r["category"] for r in rows} == set(program.enums["Category"].values)


def test_classify_data_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_classify",
                                                  EXAMPLES / "data" / "make_classify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.tickets(random.Random(module.SEED))
    on_disk = [json.loads(x) for x in (EXAMPLES / "data" / "classify.jsonl").read_text()
               .splitlines()]
    assert rows == on_disk
    assert len({r["text"] for r in rows}) == 200  # no duplicate tickets


def test_cli_check_examples_exits_0() -> None:
    result = CliRunner().invoke(main, ["check", *map(str, FILES)])
    assert result.exit_code == 0, result.output
    assert "classify.lmp: ok" in result.output


def test_cli_check_reports_errors_with_caret_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lmp"
    bad.write_text('signature S = "q -> a"\nmodule M(q: str) -> () {\n  x = predict Ss(q = q)\n}\n')
    result = CliRunner().invoke(main, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3:15: error[E1202]: unknown signature 'Ss'" in result.output
    assert "  x = predict Ss(q = q)" in result.output
    assert "^~" in result.output and "help: did you mean 'S'?" in result.output


def test_cli_check_usage_error_exits_2() -> None:
    assert CliRunner().invoke(main, ["check"]).exit_code == 2
    assert CliRunner().invoke(main, ["check", "--nope", "x.lmp"]).exit_code == 2


def test_cli_check_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lmp"
    bad.write_text("enum P {\n")
    result = CliRunner().invoke(main, ["check", str(bad), str(tmp_path / "none.lmp")])
    assert result.exit_code == 1
    assert "error[E0002]" in result.output and "error[E1001]" in result.output
    assert "Traceback" not in result.output


def test_cli_check_does_not_import_litellm(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom lmpc.cli import main\n"
            "try:\n    main(['check', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "classify.lmp")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
