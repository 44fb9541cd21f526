"""W1606: warn when the LM that writes instructions is the embedded base model.

``lmpc check`` reports it as a coded warning (exit 0) at the pass, naming the role to
set; ``lmpc build`` says it at the start, for the task LM the build really uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lmpc.cli import main
from lmpc.compiler.check.program import check_text
from lmpc.compiler.pipeline import run_optimize
from lmpc.runtime.lm import LMClient
from lmpc.runtime.scripted import ScriptedTransport


def _source(tmp_path: Path, roles: str, passes: str = "copro(breadth = 2, depth = 1)",
            lms: str = 'lm local = "local/gemma-3-270m"\n') -> Path:
    rows = [{"text": f"good {i}" if i % 2 else f"bad {i}", "label": "pos" if i % 2 else "neg"}
            for i in range(8)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "p.lmp"
    path.write_text(lms + '''signature S = "text -> label"
module M(text: str) -> (label: str) {
  s = predict S(text = text)
  return (label = s.label)
}
dataset d = jsonl "d.jsonl" { inputs: [text]  split: train 4, val 2, test 2 }
metric acc = exact_match(label)
optimize M with acc on d {
''' + roles + "\n  " + passes + "\n}\n")
    return path


def _warnings(path: Path) -> list[Any]:
    _, diags, _ = check_text(path.read_text(), str(path))
    return diags


def test_check_warns_at_the_pass_and_names_the_role(tmp_path: Path) -> None:
    path = _source(tmp_path, "  lm: local", passes="labeled_fewshot(k = 2)\n  then "
                   "mipro_v2(auto = light)")
    diags = _warnings(path)
    assert [(d.code, d.severity, d.span.line, d.span.col) for d in diags] == [
        ("W1606", "warning", 12, 8)]
    assert "embedded base model local/gemma-3-270m" in diags[0].message
    assert "prompt_model: NAME" in (diags[0].hint or "")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0  # a warning, not an error
    assert "warning[W1606]" in result.output and "p.lmp: ok, 1 warning" in result.output


def test_no_warning_with_a_hosted_prompt_model_or_without_an_instruction_pass(
        tmp_path: Path) -> None:
    lms = 'lm local = "local/gemma-3-270m"\nlm big = "openai/gpt-4o-mini"\n'
    assert _warnings(_source(tmp_path, "  lm: local\n  prompt_model: big", lms=lms)) == []
    assert _warnings(_source(tmp_path, "  lm: local", passes="bootstrap_fewshot()")) == []
    # no role set and no lm declared: the task model is the embedded one
    assert [d.code for d in _warnings(_source(tmp_path, "", lms=""))] == ["W1606"]
    # the task LM is hosted and no prompt_model is set: it writes the instructions
    assert _warnings(_source(tmp_path, "  lm: big", lms=lms)) == []


def test_build_warns_at_start_for_the_lm_it_really_uses(tmp_path: Path) -> None:
    from lmpc.compiler.check.program import load_program
    from lmpc.compiler.passes.base import BuildWarning

    lms = 'lm local = "local/gemma-3-270m"\nlm big = "openai/gpt-4o-mini"\n'
    program, _, _ = load_program(_source(tmp_path, "  lm: big", lms=lms))
    assert program is not None
    events: list[Any] = []
    client = LMClient(ScriptedTransport(default="[[ ## label ## ]]\npos\n\n"
                                        "[[ ## proposed_instruction ## ]]\nLabel the text."
                                        "\n\n[[ ## completed ## ]]"), sleep=lambda s: None)
    # --lm local: the embedded model now writes the instructions
    run_optimize(program, program.optimizes[0], client=client, progress=events.append,
                 lm_override="local")
    warned = [e for e in events if isinstance(e, BuildWarning)]
    assert [w.code for w in warned] == ["W1606"]
    assert "prompt_model" in warned[0].hint
    events.clear()
    run_optimize(program, program.optimizes[0], client=client, progress=events.append)
    assert not [e for e in events if isinstance(e, BuildWarning)]
