"""Faults of the LM side: replies outside their grammar, bodies cut in transit, replies
that do not parse, and a build whose LM calls mostly fail. A real server on loopback
misbehaves on purpose; what must hold: retried, never cached, counted, and a build that
did not really run writes nothing and exits 1."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import fake_server, sentiment_reply, sentiment_source

from lmpc.cli import main
from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LitellmTransport, LMClient, LMUnavailable, RejectedReply
from lmpc.runtime.lm_types import LMError, LMRequest, LMResponse
from lmpc.runtime.scripted import ScriptedTransport

GRAMMAR = 'root ::= " "? v0 "\\n"?\nv0 ::= ( "positive" | "negative" )'
REVIEW = json.dumps({"text": "The movie was superb."})


def invoke(args: list[str], transport: Any = None) -> Any:
    obj = {"transport": transport} if transport is not None else {}
    return CliRunner().invoke(main, args, obj=obj, env={"LMPC_TRUST_FILE": "/nonexistent"})


class Faulty:
    """The first ``bad`` replies are ``bad_text``; the rest are right."""

    def __init__(self, bad: int, bad_text: str = " positive, I think") -> None:
        self.bad, self.bad_text, self.n = bad, bad_text, 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.n += 1
            if self.n <= self.bad:
                return self.bad_text
        return sentiment_reply(body)


def _grammar_source(tmp_path: Path, url: str, retries: int = 2) -> Path:
    source = sentiment_source(tmp_path, url, retries=retries)
    text = source.read_text().replace('model_type: "text",', 'model_type: "text", grammar: true,')
    source.write_text(text)
    return source


def _client(tmp_path: Path, **kw: Any) -> LMClient:
    return LMClient(LitellmTransport(environ={}), cache=SQLiteCache(tmp_path / "c.sqlite"),
                    sleep=lambda s: None, **kw)


def _request(url: str, **settings: Any) -> LMRequest:
    return LMRequest("hosted_vllm/x", "text", prompt="Review: The movie was superb.\nLabel:",
                     settings={"api_base": url, "grammar": GRAMMAR, **settings})


# ---------------------------------------------------------------- grammar and truncation


def test_a_reply_outside_its_grammar_is_retried_and_never_cached(tmp_path: Path) -> None:
    faulty = Faulty(bad=1)
    with fake_server(faulty) as server:
        client = _client(tmp_path)
        response = client.complete(_request(server.url))
        assert response.text == " positive" and server.count == 2
        assert server.requests[0].body["grammar"] == GRAMMAR  # the grammar went along
        usage = client.usage.snapshot()
        assert usage["rejected"] == 1 and usage["retries"] == 1 and usage["failures"] == 0
        again = _client(tmp_path).complete(_request(server.url))
        assert again.cached and again.text == " positive" and server.count == 2


def test_a_server_that_ignores_the_grammar_fails_the_call_and_caches_nothing(
        tmp_path: Path) -> None:
    with fake_server(Faulty(bad=10**6)) as server:
        client = _client(tmp_path, max_retries=2)
        with pytest.raises(LMError, match="breaks the grammar"):
            client.complete(_request(server.url))
        assert server.count == 3 and len(SQLiteCache(tmp_path / "c.sqlite")) == 0
        assert client.usage.snapshot()["failures"] == 1
        assert client.usage.snapshot()["rejected"] == 3


def test_a_reply_cut_short_is_rejected_unless_max_tokens_cut_it() -> None:
    from lmpc.runtime.lm import check_reply

    request = LMRequest("hosted_vllm/x", "text", prompt="p", settings={"grammar": GRAMMAR})
    with pytest.raises(RejectedReply, match="cut short"):
        check_reply(request, LMResponse(text=" posit", finish_reason="stop"))
    check_reply(request, LMResponse(text=" posit", finish_reason="length"))  # the model's own
    with pytest.raises(RejectedReply, match="breaks the grammar"):
        check_reply(request, LMResponse(text=" posit!", finish_reason="length"))
    check_reply(request, LMResponse(text=" negative\n"))


@pytest.mark.parametrize("fault", ["truncate", "cut-json"])
def test_a_body_cut_in_transit_is_retried_and_never_cached(tmp_path: Path, fault: str) -> None:
    seen = {"n": 0}

    def first_only(body: dict[str, Any]) -> str | None:
        seen["n"] += 1
        return fault if seen["n"] == 1 else None

    with fake_server(sentiment_reply, fault=first_only) as server:
        client = _client(tmp_path)
        response = client.complete(_request(server.url))
        assert response.text == " positive" and server.count == 2
        assert client.usage.snapshot()["retries"] == 1
    with fake_server(sentiment_reply, fault=lambda body: fault) as broken:
        client = _client(tmp_path / "other", max_retries=1)
        with pytest.raises(LMError):
            client.complete(_request(broken.url))
        assert broken.count == 2 and len(SQLiteCache(tmp_path / "other" / "c.sqlite")) == 0


def test_run_through_a_faulty_server_gives_the_right_answer(tmp_path: Path) -> None:
    with fake_server(Faulty(bad=2)) as server:
        source = _grammar_source(tmp_path, server.url)
        result = invoke(["run", str(source), "--no-cache", "--input", REVIEW])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"label": "positive"}


# ---------------------------------------------------------------- replies that do not parse


def test_an_unparsable_reply_is_asked_again_with_a_fresh_rollout(tmp_path: Path) -> None:
    from lmpc.compiler.check.program import load_program
    from lmpc.compiler.pipeline import make_run_ctx
    from lmpc.runtime.execute import run_module

    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    text = source.read_text().replace('lm fake = "hosted_vllm/fake"', 'lm fake = "openai/x"')
    source.write_text(text.replace('model_type: "text",', 'model_type: "chat",'))
    program, diagnostics, _ = load_program(source)
    assert program is not None, diagnostics
    replies = iter(["no idea", "still no idea"])

    def fn(request: LMRequest) -> str:
        if request.rollout == 0:
            return next(replies)  # the chat reply, then its JSON fallback: both unreadable
        return "[[ ## label ## ]]\npositive\n[[ ## completed ## ]]"

    cache = SQLiteCache(tmp_path / "c.sqlite")
    client = LMClient(ScriptedTransport(fn=fn), cache=cache)
    ctx = make_run_ctx(program, client, program.lms["fake"])
    assert run_module(program, "Classify", {"text": "x"}, ctx).outputs == {"label": "positive"}
    assert ctx.stats.get("parse_retries") == 1
    assert client.usage.snapshot()["parse_retries"] == 1 and client.usage.snapshot()["calls"] == 3
    # a rebuild takes the same path from the cache: the same answer, nothing paid
    again = LMClient(ScriptedTransport(fn=lambda r: "never"), cache=cache)
    ctx = make_run_ctx(program, again, program.lms["fake"])
    assert run_module(program, "Classify", {"text": "x"}, ctx).outputs == {"label": "positive"}
    assert again.usage.snapshot()["calls"] == 0


# ---------------------------------------------------------------- builds that fail


def test_a_build_whose_lm_calls_all_fail_exits_1_and_keeps_the_old_artifact(
        tmp_path: Path) -> None:
    out = tmp_path / "Classify.json"
    with fake_server(sentiment_reply) as good:
        source = sentiment_source(tmp_path, good.url)
        first = invoke(["build", str(source), "--no-cache", "--quiet", "-o", str(out)])
        assert first.exit_code == 0, first.output
    before = out.read_bytes()
    with fake_server(sentiment_reply, fault=lambda body: "status:401") as bad:
        sentiment_source(tmp_path, bad.url)
        result = invoke(["build", str(source), "--no-cache", "--quiet", "-o", str(out),
                         "--json"])
    assert result.exit_code == 1
    assert "LM calls failed" in result.stderr and "401" in result.stderr
    assert "no artifact written" in result.stderr and result.stdout == ""
    assert out.read_bytes() == before and not list(tmp_path.glob(".Classify.json*"))


def test_a_dead_endpoint_ends_the_build_in_seconds(tmp_path: Path) -> None:
    with fake_server(sentiment_reply) as server:
        url = server.url  # closed when the block ends: nothing listens there after
    source = sentiment_source(tmp_path, url, retries=1)
    started = time.monotonic()
    result = invoke(["build", str(source), "--no-cache", "--quiet", "-o",
                     str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "LM calls failed" in result.stderr
    assert time.monotonic() - started < 120
    assert not (tmp_path / "x.json").exists()


def test_later_calls_fail_at_once_after_a_run_of_failures() -> None:
    transport = ScriptedTransport(fn=lambda r: (_ for _ in ()).throw(LMError("HTTP 401")))
    client = LMClient(transport, give_up_after=3, sleep=lambda s: None)
    request = LMRequest("m", "text", prompt="p")
    for _ in range(3):
        with pytest.raises(LMError, match="401"):
            client.complete(request)
    with pytest.raises(LMUnavailable, match="the last 3 calls to m failed"):
        client.complete(request)
    assert len(transport.requests) == 3  # the fourth was not sent


def test_the_build_summary_shows_failures_and_retries(tmp_path: Path) -> None:
    with fake_server(Faulty(bad=3)) as server:
        source = _grammar_source(tmp_path, server.url)
        text = invoke(["build", str(source), "--no-cache", "--quiet", "-o",
                       str(tmp_path / "a.json")])
        assert text.exit_code == 0, text.output
        assert "0 failed · retries 3 (3 replies rejected" in text.stdout
        as_json = invoke(["build", str(source), "--no-cache", "--quiet", "-o",
                          str(tmp_path / "b.json"), "--json"])
    summary = json.loads(as_json.stdout)
    assert summary["failures"] == 0 and summary["retries"] == 0 and summary["rejected"] == 0
    assert {"retries", "rejected", "parse_retries", "failures"} <= set(summary)


# ---------------------------------------------------------------- eval's exit code


def test_eval_exits_1_when_rows_fail(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"The movie was {w}.", "label": "positive"})
                            + "\n" for w in ("superb", "nice", "great")))
    transport = ScriptedTransport(fn=lambda r: " positive" if "superb" not in (r.prompt or "")
                                  else " dunno")
    source = sentiment_source(tmp_path, "http://127.0.0.1:9/v1")
    failed = invoke(["eval", str(source), "--data", str(rows), "--no-cache", "--json"],
                    transport)
    assert failed.exit_code == 1, failed.output
    assert json.loads(failed.stdout)["failures"] == 1
    assert "1 of 3 rows failed to run" in failed.stderr
    tolerated = invoke(["eval", str(source), "--data", str(rows), "--no-cache",
                        "--max-failures", "1"], transport)
    assert tolerated.exit_code == 0, tolerated.output
    assert "failures 1, retries" in tolerated.stdout
