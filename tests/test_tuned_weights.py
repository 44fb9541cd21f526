"""Tuned weights: the compact prompt a tuned text predictor is trained on and prompted
with (the same bytes), artifacts that refuse a tampered or missing adapter file through
``lmpc run`` in its own process, the LoRA GGUF writer read back, and a rebuild that
records no run-dependent fact (two hosted builds write the same bytes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import LM, World, classify_program, examples, pass_context  # noqa: E402

from lmpc.compiler.artifact import Artifact, artifact_bytes, weights_folder, write_artifact  # noqa: E402
from lmpc.compiler.finetune.records import record_for  # noqa: E402
from lmpc.compiler.passes.bootstrap_finetune import (  # noqa: E402
    as_tuned,
    bootstrap_finetune,
    tuned_prompt,
)
from lmpc.ir import LMIR, TunedIR, WeightsFileIR  # noqa: E402
from lmpc.runtime.execute import run_module  # noqa: E402
from lmpc.runtime.weights import file_sha256  # noqa: E402
from tests.fake_finetune_server import fake_finetune  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT_LM = LMIR(name="t", model="scripted/text", model_type="text")
VALUES = {"text": "good cat", "label": "positive"}


def _run_text(program, lm: LMIR) -> str:
    """The prompt ``program``'s predictor sends on ``lm`` (a scripted text model)."""
    from world import run_context

    from lmpc.runtime.lm import LMClient
    from lmpc.runtime.scripted import ScriptedTransport

    transport = ScriptedTransport(default=" positive")
    ctx = run_context(World()).derive(client=LMClient(transport, sleep=lambda s: None),
                                      program_lms={"m": LM, lm.name: lm})
    out = run_module(program, "Classify", {"text": "good cat"}, ctx)
    assert out.outputs["label"] == "positive"
    return transport.requests[0].prompt


def test_a_tuned_text_predictor_sends_exactly_its_records_compact_prompt() -> None:
    prog = classify_program()
    pred = prog.predictors["Classify.c"]
    full = record_for(prog, pred, VALUES, TEXT_LM)
    compact = record_for(prog, pred, VALUES, as_tuned(TEXT_LM))
    assert tuned_prompt(TEXT_LM) == "compact"
    # only the input and the output's label: the instructions and guide are learned
    assert compact.prompt == "Text: good cat\nLabel:"
    assert full.prompt.startswith("Classify the sentiment.") and full.prompt.endswith(
        "\n\nText: good cat\nLabel:")
    assert compact.completion == full.completion
    tuned = TEXT_LM.model_copy(update={"name": "t_tuned", "tuned": TunedIR(
        base="scripted/text", method="hosted", job="ftjob-1", prompt="compact")})
    prog.lms["t_tuned"] = tuned
    pred.lm = "t_tuned"
    assert _run_text(prog, tuned) == compact.prompt
    # the same LM tuned before the compact layout existed keeps the full one
    old = tuned.model_copy(update={"tuned": tuned.tuned.model_copy(update={"prompt": "full"})})
    prog.lms["t_tuned"] = old
    assert _run_text(prog, old) == full.prompt


def test_demos_on_tuned_weights_keep_their_blocks_without_the_header() -> None:
    from lmpc.ir import Demo

    prog = classify_program()
    pred = prog.predictors["Classify.c"]
    pred.demos = [Demo(values={"text": "bad dog", "label": "negative"})]
    rec = record_for(prog, pred, VALUES, as_tuned(TEXT_LM))
    assert rec.prompt == "Text: bad dog\nLabel: negative\n\nText: good cat\nLabel:"


def test_a_chat_model_keeps_its_full_layout_when_tuned() -> None:
    prog = classify_program()
    pred = prog.predictors["Classify.c"]
    assert tuned_prompt(LM) == "full"
    assert record_for(prog, pred, VALUES, as_tuned(LM)) == record_for(prog, pred, VALUES, LM)


# ---------------------------------------------------------------- hash-checked loading


@pytest.fixture
def tuned_artifact(tmp_path: Path) -> tuple[Path, Path]:
    """An artifact whose predictor runs on a tuned LM with a (small, fake) adapter file;
    returns the artifact and its stored adapter."""
    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))
    from runtime_programs import triage_program

    adapter = tmp_path / "built" / "adapter.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    program = triage_program()
    program.base_dir = str(tmp_path)
    pin = WeightsFileIR(path=str(adapter), sha256=file_sha256(adapter),
                        size=adapter.stat().st_size)
    program.lms["local_tuned"] = LMIR(name="local_tuned", model="local/gemma-3-270m",
                                      tuned=TunedIR(base="local/gemma-3-270m",
                                                    method="local-lora", adapter=pin,
                                                    prompt="compact"))
    program.predictors["Support.t"].lm = "local_tuned"
    path = write_artifact(Artifact(program="Support", ir=program), tmp_path / "support.json")
    stored = weights_folder(path) / f"{pin.sha256[:32]}.gguf"
    assert stored.read_bytes() == adapter.read_bytes()
    assert json.loads(path.read_text())["ir"]["lms"]["local_tuned"]["tuned"]["adapter"][
        "path"] == f"support.weights/{stored.name}"  # relative to the artifact
    return path, stored


def _lmpc_run(artifact: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMPC_CACHE_DIR": str(artifact.parent)}
    return subprocess.run([sys.executable, "-m", "lmpc", "run", str(artifact), "--input",
                           '{"ticket": "site down"}', "--no-cache"],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("tamper", "says"), [
    ("append", "size"),
    ("edit", "sha256"),
    ("delete", "no such file"),
])
def test_lmpc_run_refuses_a_changed_or_missing_adapter_naming_it(
        tuned_artifact: tuple[Path, Path], tamper: str, says: str) -> None:
    artifact, stored = tuned_artifact
    if tamper == "append":
        stored.write_bytes(stored.read_bytes() + b"!")
    elif tamper == "edit":  # same size, one byte changed
        data = bytearray(stored.read_bytes())
        data[100] ^= 0xFF
        stored.write_bytes(bytes(data))
    else:
        stored.unlink()
    result = _lmpc_run(artifact)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("error: ") and len(line.splitlines()) == 1
    assert f"support.weights/{stored.name}" in line and says in line
    assert "'local_tuned'" in line  # the LM it belongs to


def test_an_artifact_may_not_name_weights_outside_its_folder(
        tuned_artifact: tuple[Path, Path]) -> None:
    artifact, stored = tuned_artifact
    data = json.loads(artifact.read_text())
    data["ir"]["lms"]["local_tuned"]["tuned"]["adapter"]["path"] = "../elsewhere.gguf"
    artifact.write_text(json.dumps(data))
    result = _lmpc_run(artifact)
    assert result.returncode == 1 and "outside the artifact's folder" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- the LoRA GGUF writer


def test_the_lora_gguf_writer_reads_back_with_llama_cpp_names(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("gguf")
    from lmpc.compiler.finetune.lora_gguf import read_lora_gguf, write_lora_gguf

    rng = np.random.default_rng(0)
    tensors = {
        "model.layers.0.self_attn.q_proj": (rng.normal(size=(4, 16)), rng.normal(size=(8, 4))),
        "model.layers.1.mlp.down_proj": (rng.normal(size=(4, 32)), rng.normal(size=(16, 4))),
    }
    path = write_lora_gguf(tmp_path / "a.gguf", "gemma3", 2, tensors, alpha=16.0)
    meta, arrays = read_lora_gguf(path)
    assert meta["general.architecture"] == "gemma3" and meta["general.type"] == "adapter"
    assert meta["adapter.type"] == "lora" and meta["adapter.lora.alpha"] == 16.0
    assert sorted(arrays) == ["blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b",
                              "blk.1.ffn_down.weight.lora_a", "blk.1.ffn_down.weight.lora_b"]
    a, b = tensors["model.layers.1.mlp.down_proj"]
    assert arrays["blk.1.ffn_down.weight.lora_a"].shape == (4, 32)
    assert np.allclose(arrays["blk.1.ffn_down.weight.lora_a"], a, atol=1e-2)
    assert np.allclose(arrays["blk.1.ffn_down.weight.lora_b"], b, atol=1e-2)
    assert not list(tmp_path.glob(".*tmp"))  # written through a temp file, renamed
    with pytest.raises(ValueError, match="rank-r product"):
        write_lora_gguf(tmp_path / "b.gguf", "gemma3", 2,
                        {"model.layers.0.self_attn.q_proj": (a, a)}, alpha=16.0)
    assert not (tmp_path / "b.gguf").exists()


# ---------------------------------------------------------------- rebuilds


def test_two_hosted_builds_write_the_same_artifact_bytes(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """The tuned LM records no time, no cache flag: nothing a second run changes."""
    from lmpc.compiler.finetune.hosted import finetune_hosted
    from lmpc.runtime.trust import Trust

    monkeypatch.setitem(finetune_hosted.__kwdefaults__, "poll_s", 0.01)  # the fake is quick
    monkeypatch.setenv("FAKE_FT_KEY", "sk-fake")
    texts = ["good cat", "bad dog", "good sun", "bad rain"]
    outputs = []
    for _ in range(2):
        with fake_finetune(["succeeded"]) as fake:
            prog = classify_program()
            base = LMIR(name="m", model="openai/base-model", model_type="chat",
                        settings={"api_base": fake.url, "api_key": {"env": "FAKE_FT_KEY"}})
            prog.lms["m"] = base
            world = World()
            ctx = pass_context(world, prog, "Classify", examples(texts))
            ctx.run_ctx = ctx.run_ctx.derive(task_lm=base, program_lms={"m": base},
                                             trust=Trust(allow_endpoints=(fake.url,)))
            ctx.teacher_ctx = ctx.prompt_ctx = ctx.reflection_ctx = ctx.run_ctx
            out = bootstrap_finetune(prog, ctx, epochs=1, timeout=30.0)
        training = out.program.lms["m_tuned"].tuned.training
        assert not {"seconds", "cached", "cpu_seconds"} & set(training)
        for lm in out.program.lms.values():  # each fake server has its own port
            lm.settings["api_base"] = "http://fake"
        out.program.base_dir = str(tmp_path)
        outputs.append(artifact_bytes(Artifact(program="Classify", ir=out.program), tmp_path))
    assert outputs[0] == outputs[1]


def test_lmpc_show_prints_the_compact_prompt_and_says_what_it_leaves_out(
        tuned_artifact: tuple[Path, Path]) -> None:
    from click.testing import CliRunner

    from lmpc.cli import main

    artifact, stored = tuned_artifact
    result = CliRunner().invoke(main, ["show", str(artifact)])
    assert result.exit_code == 0, result.output
    assert "adapter completion-tuned" in result.output
    assert "--- weights: tuned: base local/gemma-3-270m + LoRA adapter sha256" in result.output
    assert "Ticket: <ticket>\nPriority:" in result.output
    assert "Decide how urgent" not in result.output.split("--- text request")[1]
    assert "not in this prompt: the instructions" in result.output
    assert stored.name in result.output  # the weights file is listed as an effect
