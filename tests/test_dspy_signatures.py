"""DSPy's own string signatures (its tests and its docs' examples), checked by lmpc.

``tests/fixtures/dspy_signatures.json`` holds what DSPy 3.4.1 makes of each one — field
names, directions, types and instructions, or its error — written by
``tools/dspy_signature_reference.py``, which runs DSPy itself. Each case must give the
same fields, types and instructions in lmpc, or, where lmpc cannot take what DSPy takes
(DSPy's image, audio, history and tool types; Python classes nested in classes), the
coded error the case names. With DSPy installed, the reference is recomputed and must
match the file, so it cannot drift from DSPy.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from lmpc.compiler.check.program import check_text
from lmpc.ir import TypeRef

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "dspy_signatures.json").read_text())
CASES = REFERENCE["cases"]
TOOL = ROOT / "tools" / "dspy_signature_reference.py"


def lmpc_source(case: dict[str, Any]) -> str:
    """A .lmp file declaring the case's signature (and the classes DSPy got from Python)."""
    custom = runpy.run_path(str(TOOL))["CUSTOM"]
    decls = [custom[name] for name in case.get("declares", [])]
    text = case["signature"].replace("\\", "\\\\").replace('"', '\\"')
    instructions = case.get("instructions")
    tail = ' "' + instructions.replace('"', '\\"') + '"' if instructions is not None else ""
    return "\n".join([*decls, f'signature S = "{text}"{tail}']) + "\n"


def _id(case: dict[str, Any]) -> str:
    return f"{case['where'].rsplit('/', 1)[-1]} {case['signature'][:40]!r}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_lmpc_reads_dspys_string_signature_as_dspy_does(tmp_path: Path,
                                                        case: dict[str, Any]) -> None:
    program, diags, _ = check_text(lmpc_source(case), str(tmp_path / "sig.lmp"))
    errors = [d for d in diags if d.severity == "error"]
    dspy = case["dspy"]
    if "lmpc_error" in case:  # a deliberate difference, with its reason in the case
        assert "error" not in dspy, "DSPy refuses it too: no need for an lmpc_error"
        assert errors and errors[0].code == case["lmpc_error"], [str(d) for d in diags]
        assert errors[0].hint, "the error says what to write instead"
        return
    if "error" in dspy:  # DSPy refuses it: so does lmpc, with a code
        assert errors and errors[0].code.startswith("E"), [str(d) for d in diags]
        return
    assert not errors and program is not None, [str(d) for d in diags]
    sig = program.signatures["S"]
    got = [[f.name, "in", f.type] for f in sig.inputs] + [
        [f.name, "out", f.type] for f in sig.outputs]
    want = [[name, direction, TypeRef.model_validate(t)] for name, direction, t in
            dspy["fields"]]
    assert [(n, d, str(t)) for n, d, t in got] == [(n, d, str(t)) for n, d, t in want]
    assert got == want
    assert sig.instructions == dspy["instructions"]


def test_the_reference_covers_dspys_tests_and_docs() -> None:
    accepted = [c for c in CASES if "error" not in c["dspy"]]
    same = [c for c in accepted if "lmpc_error" not in c]
    assert len(accepted) >= 45 and len(same) >= 40
    refused = {c["lmpc_error"] for c in CASES if "lmpc_error" in c}
    assert refused == {"E1205", "E1213"}
    wheres = {c["where"].split(":")[0] for c in CASES}
    assert {"tests/signatures/test_signature.py", "tests/signatures/test_custom_types.py",
            "docs/docs/learn/programming/signatures.md"} <= wheres


def test_the_reference_is_what_dspy_itself_makes_of_each_case() -> None:
    dspy = pytest.importorskip("dspy")
    if dspy.__version__ != REFERENCE["dspy_version"]:
        pytest.skip(f"reference made with DSPy {REFERENCE['dspy_version']}, "
                    f"installed {dspy.__version__}")
    fresh = runpy.run_path(str(TOOL))["reference"]()
    assert fresh == CASES, "rerun: python tools/dspy_signature_reference.py"
