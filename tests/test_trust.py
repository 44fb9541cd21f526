"""The trust model (docs/trust.md): an artifact sends no secret and no file to a server it
names, reads no file outside its project, imports no code, unless the runner allows it —
with the same flags and the same rules on every command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import agent_reply, fake_server, prompt_of, sentiment_reply

from lmpc.cli import main
from lmpc.compiler.artifact import Artifact, write_artifact
from lmpc.compiler.check.program import load_program
from lmpc.ir import LMIR, ProgramIR, RetrieveIR
from lmpc.runtime.scripted import ScriptedTransport
from lmpc.runtime.trust import FileNotAllowed, Trust, TrustError, find_project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "ghp_exfiltrate0000000000000000000000"
SECRET_TEXT = "the launch codes are 0000"
QUESTION = json.dumps({"question": "Where do I pay a fine?"})
RAG_REPLY = " The passages say so.\nAnswer: at the front desk"


def invoke(args: list[str], transport: Any = None, **env: str) -> Any:
    obj = {"transport": transport} if transport is not None else {}
    return CliRunner().invoke(main, args, obj=obj, env={"LMPC_TRUST_FILE": "/nonexistent",
                                                         **env})


def _rag_artifact(folder: Path, lm: LMIR | None = None, corpus: str | None = None) -> Path:
    """The RAG example as an artifact in ``folder``/build, its data copied beside it."""
    project = folder / "proj"
    shutil.copytree(EXAMPLES, project / "examples")
    program, diagnostics, _ = load_program(project / "examples" / "rag.lmp")
    assert program is not None, diagnostics
    if lm is not None:
        program.lms = {lm.name: lm}
    if corpus is not None:
        step = program.modules["HandbookQA"].steps[0]
        step.retrieve = RetrieveIR(corpus=corpus, k=3)
    program.optimizes = []
    artifact = Artifact(program="HandbookQA", ir=program)
    return write_artifact(artifact, project / "build" / "HandbookQA.json")


# ---------------------------------------------------------------- secrets to endpoints


def test_an_artifact_cannot_send_an_env_secret_to_a_server_it_names(tmp_path: Path) -> None:
    with fake_server(sentiment_reply) as server:
        lm = LMIR(name="local", model="hosted_vllm/x", model_type="text", settings={
            "api_base": server.url, "api_key": {"env": "GITHUB_TOKEN"}, "num_retries": 0})
        artifact = _rag_artifact(tmp_path, lm)
        refused = invoke(["run", str(artifact), "--no-cache", "--input", QUESTION],
                         GITHUB_TOKEN=TOKEN)
        assert server.count == 0 and TOKEN.encode() not in server.raw_bytes()
        assert refused.exit_code == 1
        assert "GITHUB_TOKEN" in refused.stderr and server.url in refused.stderr
        assert f"--allow-endpoint {server.url}" in refused.stderr and TOKEN not in refused.output
        # the runner names the endpoint: now (and only now) the token goes there
        allowed = invoke(["run", str(artifact), "--no-cache", "--allow-endpoint", server.url,
                          "--input", QUESTION], GITHUB_TOKEN=TOKEN)
        assert server.count >= 1 and TOKEN.encode() in server.raw_bytes(), allowed.output


def test_the_environment_key_litellm_would_add_on_its_own_is_not_sent(tmp_path: Path) -> None:
    """``openai/...`` with an api_base and no api_key: litellm reads OPENAI_API_KEY by
    itself; lmpc sends a placeholder to an endpoint the runner did not name."""
    with fake_server(lambda body: "[[ ## answer ## ]]\nat the desk\n[[ ## completed ## ]]"
                     ) as server:
        lm = LMIR(name="local", model="openai/x", model_type="chat",
                  settings={"api_base": server.url, "num_retries": 0})
        artifact = _rag_artifact(tmp_path, lm)
        result = invoke(["run", str(artifact), "--no-cache", "--input", QUESTION],
                        OPENAI_API_KEY="sk-envkey-00000000000000")
        assert server.count >= 1, result.output
        assert b"sk-envkey" not in server.raw_bytes()
        headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
        assert headers["authorization"] == "Bearer lmpc-no-credential"


def test_the_same_endpoint_rules_apply_to_fallbacks() -> None:
    trust = Trust()
    ok = {"api_key": {"env": "K"}}
    assert trust.guard_request("openai/x", ok) == ok  # provider default: allowed
    with pytest.raises(TrustError, match="would send the environment secret"):
        trust.guard_request("openai/x", {"base_url": "https://evil.example/v1",
                                         "extra_headers": {"X-K": {"env": "K"}}})
    with pytest.raises(TrustError, match="credentials"):  # signed with ambient AWS keys
        trust.guard_request("bedrock/claude", {"aws_bedrock_runtime_endpoint": "https://e"})
    allowed = Trust(allow_endpoints=("https://evil.example",))
    assert allowed.guard_request("openai/x", {"base_url": "https://evil.example/v1",
                                              "api_key": {"env": "K"}})
    assert not allowed.endpoint_allowed("https://evil.example.com/v1")  # not a prefix trick
    assert not allowed.endpoint_allowed("http://evil.example/v1")  # nor another scheme


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("where", ["absolute", "relative", "symlink", "hidden"])
def test_a_corpus_outside_the_project_is_not_read(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET_TEXT + "\n")
    corpus = {"absolute": str(secret), "relative": "../../elsewhere/secret.txt",
              "symlink": "data/link.txt", "hidden": "../.env"}[where]
    with fake_server(sentiment_reply) as server:
        lm = LMIR(name="local", model="hosted_vllm/x", model_type="text",
                  settings={"api_base": server.url, "num_retries": 0})
        artifact = _rag_artifact(tmp_path, lm, corpus)
        project = tmp_path / "proj"
        (project / "examples" / "data" / "link.txt").symlink_to(secret)
        (project / ".env").write_text(SECRET_TEXT + "\n")
        refused = invoke(["run", str(artifact), "--no-cache", "--input", QUESTION])
        assert refused.exit_code == 1 and "reads corpus of HandbookQA.docs" in refused.stderr
        assert "--allow-path" in refused.stderr
        assert server.count == 0 and SECRET_TEXT.encode() not in server.raw_bytes()
        shown = invoke(["show", str(artifact)])
        assert shown.exit_code == 0 and "BLOCKED" in shown.stdout


def test_allow_path_lets_the_runner_grant_a_folder(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "corpus.txt"
    secret.parent.mkdir()
    secret.write_text("Pay a fine at the front desk.\n")
    artifact = _rag_artifact(tmp_path, corpus=str(secret))
    transport = ScriptedTransport(default=RAG_REPLY)
    result = invoke(["run", str(artifact), "--no-cache", "--allow-path", str(secret.parent),
                     "--input", QUESTION], transport)
    assert result.exit_code == 0, result.output
    assert "front desk" in prompt_of({"prompt": transport.requests[0].prompt})


def test_the_runtime_checks_files_too_not_only_the_cli(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    trust = Trust(project=tmp_path / "p")
    with pytest.raises(FileNotAllowed, match="outside the program's project"):
        trust.resolve_file("../x.txt", tmp_path / "p", "corpus")
    assert trust.resolve_file("x.txt", tmp_path / "p", "corpus") == (tmp_path / "p" / "x.txt")


def test_the_project_is_found_from_where_the_file_lies(tmp_path: Path) -> None:
    (tmp_path / "repo" / "sub" / "build").mkdir(parents=True)
    (tmp_path / "loose" / "build").mkdir(parents=True)
    (tmp_path / "repo" / "lmpc.toml").write_text("")
    assert find_project(tmp_path / "repo" / "sub" / "build" / "a.json") == tmp_path / "repo"
    assert find_project(tmp_path / "loose" / "build" / "a.json") == tmp_path / "loose"
    assert find_project(tmp_path / "loose" / "a.json") == tmp_path / "loose"
    home = Path.home().resolve()
    assert find_project(home / "Downloads" / "a.json") != home  # never the home folder


# ---------------------------------------------------------------- code, on every command


COMMANDS = ["run", "eval", "test", "show", "build"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_the_same_trust_flags(command: str) -> None:
    result = invoke([command, "--help"])
    for flag in ("--allow-tools", "--allow-tool NAME", "--allow-endpoint URL",
                 "--allow-path DIR"):
        assert flag in result.stdout, (command, flag)


def _agent_args(command: str, target: str, tmp_path: Path) -> list[str]:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "10 miles in km?", "answer": 16.0934}) + "\n")
    return {
        "run": ["run", target, "--no-cache", "--input", '{"question": "10 miles in km?"}'],
        "eval": ["eval", target, "--no-cache", "--data", str(rows)],
        "test": ["test", target, "--no-cache", "--tests", str(EXAMPLES / "agent.lmp")],
        "build": ["build", target, "--no-cache", "-o", str(tmp_path / "a.json")],
        "show": ["show", target],
    }[command]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["source", "artifact"])
def test_python_code_needs_the_same_flag_on_every_command(command: str, kind: str,
                                                          tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLES, project)
    source = project / "agent.lmp"
    marker = tmp_path / "imported.txt"
    (project / "agent_tools.py").write_text(
        (EXAMPLES / "agent_tools.py").read_text()
        + f"\nopen({str(marker)!r}, 'w').write('imported')\n")
    target = str(source)
    if kind == "artifact":
        if command == "build":
            pytest.skip("build takes a source")
        program, _, _ = load_program(source)  # written directly: building would import
        assert program is not None
        target = str(write_artifact(Artifact(program="UnitAgent", ir=program),
                                    project / "build" / "UnitAgent.json"))
    args = _agent_args(command, target, tmp_path)
    refused = invoke(args, ScriptedTransport(fn=agent_reply))
    assert not marker.exists(), "the tool's module was imported without --allow-tools"
    if command == "show":
        assert refused.exit_code == 0
        assert "imports tool convert: agent_tools:convert -- BLOCKED" in refused.stdout
    else:
        assert refused.exit_code == 1, refused.output
        assert "imports tool convert: agent_tools:convert" in refused.stderr
        assert "--allow-tools" in refused.stderr
    transport = ScriptedTransport(fn=agent_reply)
    allowed = invoke([*args, "--allow-tools"], transport)
    assert allowed.exit_code == 0, allowed.output
    if command == "show":  # show never imports, even when allowed
        assert not marker.exists() and "imports tool convert: agent_tools:convert\n" in \
            allowed.stdout
    else:  # the real tool ran: its result is the observation the model saw
        assert any("Observation 1: 16.0934" in (r.prompt or "") for r in transport.requests)
    by_name = invoke([*args, "--allow-tool", "convert"], ScriptedTransport(fn=agent_reply))
    assert by_name.exit_code == 0, by_name.output


def test_the_environment_and_the_user_config_can_allow_too(tmp_path: Path) -> None:
    config = tmp_path / "trust.toml"
    config.write_text('allow_tools = ["convert"]\nallow_endpoints = ["http://127.0.0.1:9"]\n'
                      f'allow_paths = ["{tmp_path}"]\n')
    trust = Trust.configured(environ={"LMPC_TRUST_FILE": str(config)})
    assert trust.code_allowed("convert", "x:y") and not trust.code_allowed("other", "x:z")
    assert trust.endpoint_allowed("http://127.0.0.1:9/v1") and trust.allow_paths == (tmp_path,)
    env = Trust.configured(environ={"LMPC_ALLOW_TOOLS": "1", "LMPC_TRUST_FILE": "/none",
                                    "LMPC_ALLOW_ENDPOINTS": "https://a.example,https://b"})
    assert env.allow_tools is True and env.endpoint_allowed("https://b/v1")
    config.write_text("allow_everything = true\n")
    with pytest.raises(TrustError, match="unknown setting"):
        Trust.configured(environ={"LMPC_TRUST_FILE": str(config)})


def test_a_python_metric_and_a_reducer_are_code_too(tmp_path: Path) -> None:
    artifact = _rag_artifact(tmp_path)
    data = json.loads(artifact.read_text())
    data["ir"]["metrics"]["found"] = {"name": "found", "kind": "python",
                                      "import_path": "evil:score"}
    data["metric"] = "found"
    data["ir"]["ensemble"] = {"members": [{}], "reduce": "evil:reduce"}
    artifact.write_text(json.dumps(data))
    shown = invoke(["show", str(artifact)])
    assert "imports metric found: evil:score -- BLOCKED" in shown.stdout
    assert "imports ensemble reducer evil:reduce: evil:reduce -- BLOCKED" in shown.stdout


# ---------------------------------------------------------------- show lists every effect


def test_show_lists_every_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "p.lmp"
    (tmp_path / "docs.txt").write_text("a\n\nb\n")
    (tmp_path / "t.py").write_text("def search(q):\n    return []\n")
    source.write_text('''lm big = "openai/gpt-4o-mini" { api_key: env.OPENAI_API_KEY }
lm mine = "hosted_vllm/m" { api_base: "http://127.0.0.1:9/v1", api_key: env.MY_KEY }
tool search(q: str) -> list[str] = python "t:search"
signature S = "question: str, context: list[str] -> answer: str"
signature T = "question: str -> answer: str"
module M(question: str) -> (answer: str) {
  d = retrieve(corpus = "docs.txt", k = 1)(query = question)
  a = predict(lm = mine) S(question = question, context = d.passages)
  r = react(tools = [search], max_iters = 2) T(question = question)
  return (answer = r.answer)
}
''')
    result = invoke(["show", str(source), "--allow-endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert ("LM big: openai/gpt-4o-mini (the provider's default endpoint), "
            "sends env OPENAI_API_KEY") in out
    assert "LM mine: hosted_vllm/m at http://127.0.0.1:9/v1, sends env MY_KEY\n" in out
    assert f"reads corpus of M.d: {tmp_path / 'docs.txt'}" in out
    assert "imports tool search: t:search -- BLOCKED" in out
    assert "=== M.r (react," in out and "cannot render" not in out  # the ReAct step's prompt
    assert "search(q: str) -> list[str]" in out


# ---------------------------------------------------------------- paths from anywhere


def _scripted_rag(request: Any) -> str:
    return RAG_REPLY


@pytest.mark.parametrize(("example", "program", "extra", "fn", "expected"), [
    ("rag.lmp", "HandbookQA", [], _scripted_rag, {"answer": "at the front desk"}),
    ("agent.lmp", "UnitAgent", ["--allow-tools"], agent_reply, {"answer": 16.0934}),
])
def test_an_artifact_built_from_a_relative_path_runs_from_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str, program: str,
        extra: list[str], fn: Any, expected: dict[str, Any]) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLES, project / "examples")
    monkeypatch.chdir(project)
    built = invoke(["build", f"examples/{example}", "--no-cache", "--quiet", *extra],
                   ScriptedTransport(fn=fn))
    assert built.exit_code == 0, built.output
    artifact = project / "build" / f"{program}.json"
    assert json.loads(artifact.read_text())["ir"]["base_dir"] == "../examples"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for target in (str(artifact), os.path.relpath(artifact, elsewhere)):
        result = invoke(["run", target, "--no-cache", *extra, "--input",
                         json.dumps({"question": "10 miles in km?"})], ScriptedTransport(fn=fn))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == expected


def test_the_artifact_bytes_do_not_depend_on_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLES, project / "examples")
    outputs = []
    for cwd, source in ((project, "examples/rag.lmp"), (project / "examples", "rag.lmp")):
        monkeypatch.chdir(cwd)
        out = project / "build" / f"from-{cwd.name}.json"
        built = invoke(["build", source, "--no-cache", "--quiet", "-o", str(out)],
                       ScriptedTransport(fn=_scripted_rag))
        assert built.exit_code == 0, built.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_program_ir_base_dir_is_absolute_after_checking(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    program, _, _ = load_program("examples/rag.lmp")
    assert isinstance(program, ProgramIR) and Path(program.base_dir).is_absolute()
