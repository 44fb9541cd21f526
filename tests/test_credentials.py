"""Credentials: every placement of a literal one is refused before an artifact holds
it, and a secret is masked in messages without mangling other words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.cli import main
from lmpc.compiler.artifact import ArtifactError, check_no_secrets
from lmpc.credentials import credential_problems, mask
from lmpc.ir import LMIR, ProgramIR

PLACEMENTS = [
    ({"api_key": "sk-live-123"}, "api_key"),
    ({"extra_headers": {"Authorization": "Bearer abc123"}}, "extra_headers.Authorization"),
    ({"extra_headers": {"X-Api-Key": "abc123"}}, "extra_headers.X-Api-Key"),
    ({"headers": {"x-custom": "ghp_abcdefghijklmnop"}}, "headers.x-custom"),
    ({"api_base": "https://user:pw@example.com/v1"}, "api_base"),
    ({"api_base": "https://example.com/v1?api_key=abc"}, "api_base"),
    ({"base_url": "https://example.com/v1?sig=abc&se=2030"}, "base_url"),
    ({"vertex_credentials": '{"type": "service_account"}'}, "vertex_credentials"),
    ({"aws_secret_access_key": "wJalrXUtnFEMI"}, "aws_secret_access_key"),
    ({"aws_session_token": "FwoGZXIvYXdzE"}, "aws_session_token"),
    ({"azure_ad_token": "eyJ0eXAi"}, "azure_ad_token"),
    ({"client_secret": 12345678}, "client_secret"),
    ({"extra_body": {"auth": {"password": "hunter2"}}}, "extra_body.auth"),
]


@pytest.mark.parametrize(("settings", "where"), PLACEMENTS)
def test_every_literal_placement_is_found(settings: dict[str, Any], where: str) -> None:
    assert [w for w, _ in credential_problems(settings)] == [where]
    program = ProgramIR(lms={"x": LMIR(name="x", model="openai/x", settings=settings)})
    with pytest.raises(ArtifactError, match="env.NAME") as err:
        check_no_secrets(program)
    for value in _strings(settings):
        assert value not in str(err.value)  # the refusal never repeats the secret


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [str(value)] if len(str(value)) > 4 else []


@pytest.mark.parametrize("settings", [
    {"api_key": {"env": "OPENAI_API_KEY"}, "max_tokens": 8, "top_k": 3, "temperature": 0},
    {"extra_headers": {"Authorization": {"env": "TOKEN"}, "User-Agent": "lmpc"}},
    {"api_base": "http://127.0.0.1:8000/v1", "timeout": 30, "stop": ["\n"]},
    {"api_base": {"env": "MY_ENDPOINT_WITH_KEY"}},
    {"use_auth": True, "logit_bias": {"50256": -100}},
])
def test_env_references_and_ordinary_settings_pass(settings: dict[str, Any]) -> None:
    assert credential_problems(settings) == []


def test_a_fallback_holding_a_key_is_refused() -> None:
    lm = LMIR(name="x", model="openai/x", fallbacks=["openai/y"])
    lm.settings = {"fallbacks": [{"model": "openai/z", "api_key": "sk-abc"}]}
    with pytest.raises(ArtifactError, match="fallbacks"):
        check_no_secrets(ProgramIR(lms={"x": lm}))


def test_masking_replaces_whole_tokens_only() -> None:
    assert mask("Text: the key x was refused", ["x"]) == "Text: the key *** was refused"
    assert mask("x-api-key: x.", ["x"]) == "x-api-key: ***."
    assert mask("see x.com", ["x"]) == "see x.com"
    assert mask("a=x&b", ["x"]) == "a=***&b"
    assert mask("keysk-abc123456", ["sk-abc123456"]) == "key***"
    assert mask("Authorization: Bearer sk-abc123", ["Bearer sk-abc123"]) == \
        "Authorization: ***"
    assert mask("got key 'sk-abc123'.", ["sk-abc123"]) == "got key '***'."
    assert mask("https://h/v1?key=s3cret&x=1", ["s3cret"]) == "https://h/v1?key=***&x=1"
    assert mask("expected text", ["ext"]) == "expected text"


def test_a_401_never_prints_the_key(tmp_path: Path) -> None:
    """The server echoes the refused header (many do); lmpc masks it."""
    with fake_server(sentiment_reply, fault=lambda body: "status:401") as server:
        key = "k9-literal-key-9000"
        source = sentiment_source(tmp_path, server.url,
                                  extra=f', extra_headers: {{ "X-Api-Key": "{key}" }}')
        result = CliRunner().invoke(main, ["run", str(source), "--no-cache", "--input",
                                           json.dumps({"text": "The movie was nice."})])
        assert server.count == 1 and key.encode() in server.raw_bytes()
    assert result.exit_code == 1
    assert "401" in result.stderr and key not in result.output
    assert "***" in result.stderr


def test_an_env_secret_is_masked_but_the_text_around_it_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_KEY", "x")
    with fake_server(sentiment_reply, fault=lambda body: "status:401") as server:
        source = sentiment_source(tmp_path, server.url,
                                  extra=', extra_headers: { "X-Api-Key": env.SHORT_KEY }')
        result = CliRunner().invoke(main, ["run", str(source), "--no-cache", "--allow-endpoint",
                                           server.url, "--input",
                                           json.dumps({"text": "The movie was nice."})])
    assert result.exit_code == 1
    assert "'X-Api-Key': '***'" in result.stderr or "'x-api-key': '***'" in result.stderr
    assert "InternalServerError" not in result.stderr or "Te***t" not in result.stderr
    assert "***" not in result.stderr.replace("'***'", "")  # nothing else was masked


def test_an_artifact_holding_a_literal_credential_is_refused_on_load(tmp_path: Path) -> None:
    from lmpc.compiler.artifact import Artifact, read_artifact, write_artifact
    from lmpc.ir import ModuleIR

    program = ProgramIR(modules={"M": ModuleIR(name="M")},
                        lms={"x": LMIR(name="x", model="openai/x")})
    out = write_artifact(Artifact(program="M", ir=program), tmp_path / "a.json")
    data = json.loads(out.read_text())
    data["ir"]["lms"]["x"]["settings"] = {"extra_headers": {"Authorization": "Bearer abc"}}
    out.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="extra_headers.Authorization") as err:
        read_artifact(out)
    assert "Bearer abc" not in str(err.value)
