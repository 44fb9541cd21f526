"""The artifact: schema, atomic deterministic writes, validation, loading without code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_pipeline_fixtures import sentiment_program

from lmpc.compiler.artifact import (
    Artifact,
    ArtifactError,
    PassRecord,
    Scores,
    SplitScores,
    artifact_json_schema,
    load_artifact,
    program_subset,
    read_artifact,
    write_artifact,
)
from lmpc.ir import LMIR, Demo, ModuleIR, SignatureIR


def _artifact(tmp_path: Path, score: float = 0.8333333333333) -> Artifact:
    program = sentiment_program(tmp_path)
    program.predictors["Classify.p"].demos = [
        Demo(values={"text": "The movie was great.", "label": "positive"}, kind="bootstrapped")
    ]
    program.modules["Unused"] = ModuleIR(name="Unused")
    program.signatures["Other"] = SignatureIR(name="Other")
    return Artifact(
        program="Classify", metric="acc", task_lm="fake", seed=1,
        sources=program.sources, ir=program_subset(program, "Classify", 0),
        passes=[PassRecord(name="labeled_fewshot", params={"k": 2, "sample": True})],
        scores=Scores(val=SplitScores(before=0.1, after=score),
                      test=SplitScores(before=0.2, after=0.9)),
    )


def test_write_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "build" / "a.json", tmp_path / "build" / "b.json"
    write_artifact(_artifact(tmp_path), out_a)
    write_artifact(_artifact(tmp_path), out_b)
    assert out_a.read_bytes() == out_b.read_bytes()
    text = out_a.read_text()
    assert '"after": 0.833333' in text  # fixed float formatting
    assert str(tmp_path) not in text  # paths are relative to the artifact
    program, name = load_artifact(out_a)
    assert name == "Classify"
    assert program.predictors["Classify.p"].demos[0].kind == "bootstrapped"
    assert Path(program.base_dir) == tmp_path.resolve()


def test_subset_keeps_only_what_the_program_needs(tmp_path: Path) -> None:
    ir = _artifact(tmp_path).ir
    assert set(ir.modules) == {"Classify"} and set(ir.signatures) == {"Judge"}
    assert set(ir.enums) == {"Sentiment"} and set(ir.metrics) == {"acc"}
    assert set(ir.lms) == {"fake"}
    # the optimize block's dataset is described (path, mapping, split), never its rows
    assert set(ir.datasets) == {"reviews"} and ir.datasets["reviews"].path == "reviews.jsonl"


def test_secrets_stay_env_references(tmp_path: Path) -> None:
    out = write_artifact(_artifact(tmp_path), tmp_path / "a.json")
    assert json.loads(out.read_text())["ir"]["lms"]["fake"]["settings"] == {
        "api_key": {"env": "FAKE_KEY"}}
    art = _artifact(tmp_path)
    art.ir.lms["ok"] = LMIR(name="ok", model="m", settings={"max_tokens": 8, "top_k": 3})
    write_artifact(art, tmp_path / "ok.json")  # token counts are not secrets
    art.ir.lms["fake"] = LMIR(name="fake", model="m", settings={"api_key": "sk-123"})
    with pytest.raises(ArtifactError, match="environment reference"):
        write_artifact(art, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


def test_crash_mid_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "a.json"
    write_artifact(_artifact(tmp_path), out)
    before = out.read_bytes()

    def crash(*args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(_artifact(tmp_path, score=0.5), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".a.json")] == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("schema_version"), "not an lmpc artifact"),
        (lambda d: d.update(schema_version=99), "schema version 99 is not supported"),
        (lambda d: d["ir"]["predictors"]["Classify.p"].pop("signature"),
         "at ir.predictors.Classify.p.signature: Field required"),
        (lambda d: d["ir"]["predictors"]["Classify.p"]["demos"][0].update(kind="magic"),
         "at ir.predictors.Classify.p.demos.0.kind"),
        (lambda d: d.update(program="Nope"), "program 'Nope' is not one of its modules"),
        (lambda d: d.update(surprise=1), "at surprise: Extra inputs are not permitted"),
    ],
)
def test_schema_errors_are_clear(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    out = write_artifact(_artifact(tmp_path), tmp_path / "a.json")
    data = json.loads(out.read_text())
    mutate(data)
    out.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as err:
        read_artifact(out)
    assert message in str(err.value) and str(out) in str(err.value)


def test_not_json_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops")
    with pytest.raises(ArtifactError, match=r"bad.json:2:3: not valid JSON"):
        read_artifact(bad)
    with pytest.raises(ArtifactError, match="no such artifact"):
        read_artifact(tmp_path / "missing.json")


def test_load_never_imports_user_code(tmp_path: Path) -> None:
    """A python metric and a tool in the artifact are data: loading imports nothing."""
    art = _artifact(tmp_path)
    art.ir.metrics["acc"] = art.ir.metrics["acc"].model_copy(
        update={"kind": "python", "import_path": "evil_module_xyz:fn", "field": None})
    (tmp_path / "evil_module_xyz.py").write_text("raise SystemExit('imported!')\n")
    out = write_artifact(art, tmp_path / "a.json")
    program, _ = load_artifact(out)
    assert program.metrics["acc"].import_path == "evil_module_xyz:fn"


def test_json_schema_describes_the_file() -> None:
    schema = artifact_json_schema()
    assert {"schema_version", "program", "ir", "passes", "scores"} <= set(schema["properties"])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_artifact_mode_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        out = write_artifact(_artifact(tmp_path), tmp_path / f"a{umask:o}.json")
        rewritten = write_artifact(_artifact(tmp_path, score=0.5), out)  # over an old one
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert rewritten.stat().st_mode & 0o777 == 0o666 & ~umask
