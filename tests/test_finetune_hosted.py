"""Hosted fine-tuning through litellm against a loopback fake of the API."""

from __future__ import annotations

import json

import pytest

from lmpc.compiler.finetune.hosted import FinetuneError, finetune_hosted, jsonl
from lmpc.compiler.finetune.local import LoraParams
from lmpc.compiler.finetune.records import TrainingRecord
from lmpc.ir import LMIR
from tests.fake_finetune_server import TUNED, fake_finetune

RECORDS = [
    TrainingRecord("M.p", "chat", messages=({"role": "system", "content": "Classify."},
                                            {"role": "user", "content": f"ticket {i}"},
                                            {"role": "assistant", "content": "billing"}))
    for i in range(3)
]
PARAMS = LoraParams(epochs=2, batch_size=1, seed=5)


def _lm(url: str) -> LMIR:
    return LMIR(name="fast", model="openai/base-model",
                settings={"api_base": url, "api_key": {"env": "FAKE_FT_KEY"}})


def _run(polls: list, **kw):
    with fake_finetune(polls) as fake:
        said: list[str] = []
        try:
            result = finetune_hosted(_lm(fake.url), RECORDS, PARAMS, poll_s=0.01,
                                     max_poll_s=0.05, progress=said.append,
                                     environ={"FAKE_FT_KEY": "sk-test-123"}, **kw)
        except FinetuneError as exc:
            return fake, None, said, exc
        return fake, result, said, None


def test_success_uploads_the_records_creates_a_job_and_returns_the_tuned_model() -> None:
    fake, result, said, error = _run(["running", "running", "succeeded"])
    assert error is None and result is not None
    assert result.model == f"openai/{TUNED}" and result.job == "ftjob-1"
    assert result.polls == 3
    lines = [json.loads(x) for x in fake.uploads[0].decode().splitlines()]
    assert lines == [r.to_json() for r in RECORDS]
    assert fake.uploads[0] == jsonl(RECORDS)
    job = fake.jobs[0]
    assert job["model"] == "base-model" and job["training_file"] == "file-1"
    assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": 1} and job["seed"] == 5
    auth = [v for h in fake.headers for k, v in h.items() if k.lower() == "authorization"]
    assert auth and all(v == "Bearer sk-test-123" for v in auth)
    assert any("succeeded" in s for s in said)


def test_a_failed_job_is_an_error_with_the_providers_reason() -> None:
    _, result, _, error = _run(["running", "failed"])
    assert result is None
    assert "failed: training data rejected" in str(error)


def test_a_job_that_never_finishes_times_out() -> None:
    fake, result, _, error = _run(["running"], timeout_s=2.0)
    assert result is None and "did not finish within" in str(error)
    assert fake.poll_count >= 3  # it kept polling, backing off, until the timeout


def test_a_429_mid_poll_waits_and_polls_again() -> None:
    fake, result, said, error = _run(["running", 429, 429, "succeeded"])
    assert error is None and result is not None and result.model.endswith(TUNED)
    assert fake.poll_count == 4
    assert sum("rate limited" in s for s in said) == 2


def test_polls_failing_for_good_give_up() -> None:
    _, result, _, error = _run(["running", 503], max_errors=3)
    assert result is None and "3 polls in a row failed" in str(error)


def test_the_secret_never_appears_in_errors() -> None:
    _, _, _, error = _run([401])
    assert error is not None and "sk-test-123" not in str(error)


def test_an_env_secret_is_not_sent_to_an_endpoint_the_runner_did_not_allow() -> None:
    from lmpc.runtime.trust import Trust

    with fake_finetune(["succeeded"]) as fake:
        with pytest.raises(FinetuneError, match="not allowed"):
            finetune_hosted(_lm(fake.url), RECORDS, PARAMS, poll_s=0.01, trust=Trust(),
                            environ={"FAKE_FT_KEY": "sk-test-123"})
        assert fake.uploads == [] and fake.jobs == []
