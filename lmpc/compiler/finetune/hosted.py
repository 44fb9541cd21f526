"""Fine-tuning a hosted model through litellm's fine-tuning API (OpenAI-compatible).

The records go up as one JSONL file (``purpose = "fine-tune"``), a job is created on the
LM's base model, and the job is polled until it succeeds, fails or ``timeout_s`` passes.
Polls back off from ``poll_s`` to ``max_poll_s``; a 429 waits for its ``Retry-After``
(or the next interval) and a transient error is retried, up to ``max_errors`` in a row.
The tuned model's name (``openai/ft:...``) is what the artifact's LM then calls.

The LM's own endpoint settings (``api_base``, ``api_key`` as ``env.NAME``, ...) are used,
under the same trust rule as completion calls: an environment secret goes only to the
provider's default endpoint or to one the runner allowed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmpc.compiler.finetune.records import TrainingRecord
from lmpc.ir import LMIR

log = logging.getLogger("lmpc")

#: Providers litellm's fine-tuning API speaks to by name; any other model is reached as
#: an OpenAI-compatible endpoint (its ``api_base``).
NATIVE = ("openai", "azure", "vertex_ai")
ENDPOINT_SETTINGS = ("api_base", "base_url", "api_key", "api_version", "organization",
                     "extra_headers", "timeout")
DONE = {"succeeded": True, "failed": False, "cancelled": False}


class FinetuneError(Exception):
    """A hosted fine-tuning job that could not be started or did not succeed."""


@dataclass(frozen=True)
class HostedResult:
    model: str  # the litellm model string of the tuned model
    job: str
    file: str
    seconds: float
    polls: int


def provider_of(model: str) -> tuple[str, str]:
    """(litellm provider for the fine-tuning API, the provider's base model name).

    >>> provider_of("openai/gpt-4o-mini-2024-07-18")
    ('openai', 'gpt-4o-mini-2024-07-18')
    >>> provider_of("hosted_vllm/my-model")
    ('openai', 'my-model')
    """
    prefix, sep, rest = model.partition("/")
    if not sep:
        return "openai", model
    return (prefix if prefix in NATIVE else "openai"), rest


def jsonl(records: list[TrainingRecord]) -> bytes:
    """The records as a fine-tuning JSONL file (one JSON object a line)."""
    lines = [json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True) for r in records]
    return ("\n".join(lines) + "\n").encode("utf-8")


def finetune_hosted(
    lm: LMIR,
    records: list[TrainingRecord],
    params: Any,
    *,
    timeout_s: float = 3600.0,
    poll_s: float = 5.0,
    max_poll_s: float = 60.0,
    max_errors: int = 5,
    trust: Any = None,
    progress: Callable[[str], None] | None = None,
    environ: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HostedResult:
    """Upload ``records``, start a job on ``lm``'s model, wait for it; the tuned model."""
    from lmpc.runtime.lm import (
        LMError,
        RateLimited,
        TransientLMError,
        import_litellm,
        map_litellm_error,
        resolve_settings,
    )

    say = progress or (lambda text: None)
    provider, base = provider_of(lm.model)
    settings = {k: v for k, v in lm.settings.items() if k in ENDPOINT_SETTINGS}
    if trust is not None:
        try:
            settings = trust.guard_request(lm.model, settings)
        except Exception as exc:  # TrustError: an env secret to an endpoint not allowed
            raise FinetuneError(str(exc)) from None
    try:
        resolved, secrets = resolve_settings(settings, environ)
    except LMError as exc:
        raise FinetuneError(f"LM {lm.name}: {exc}") from None
    if "base_url" in resolved:
        resolved.setdefault("api_base", resolved.pop("base_url"))
    litellm = import_litellm()
    start = time.monotonic()

    def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            # max_retries=0: no hidden SDK retries; this loop backs off itself
            return fn(custom_llm_provider=provider, max_retries=0, **resolved, **kwargs)
        except Exception as exc:
            raise map_litellm_error(lm.model, exc, secrets) from None

    try:
        upload = call("upload", litellm.create_file,
                      file=("lmpc-records.jsonl", jsonl(records)), purpose="fine-tune")
        say(f"uploaded {len(records)} records as {upload.id}")
        hyper = {"n_epochs": params.epochs, "batch_size": params.batch_size}
        job = call("create", litellm.create_fine_tuning_job, model=base,
                   training_file=upload.id, hyperparameters=hyper, seed=params.seed,
                   suffix="lmpc")
    except LMError as exc:
        raise FinetuneError(f"fine-tuning {lm.model}: {exc}") from None
    say(f"job {job.id} created")
    interval, errors, polls = poll_s, 0, 0
    while True:
        waited = time.monotonic() - start
        if waited > timeout_s:
            raise FinetuneError(f"fine-tuning job {job.id} on {lm.model} did not finish "
                                f"within {timeout_s:.0f} s (last status: "
                                f"{getattr(job, 'status', '?')}); raise the pass's timeout "
                                "or check the job with the provider")
        sleep(min(interval, max(timeout_s - waited, 0.0) + 0.001))
        polls += 1
        try:
            job = call("poll", litellm.retrieve_fine_tuning_job, fine_tuning_job_id=job.id)
            errors = 0
        except RateLimited as exc:
            errors += 1
            interval = min(max(exc.retry_after or interval, interval), max_poll_s)
            say(f"job {job.id}: rate limited, next poll in {interval:.0f} s")
        except TransientLMError as exc:
            errors += 1
            say(f"job {job.id}: poll failed ({exc}), retrying")
        except LMError as exc:
            raise FinetuneError(f"fine-tuning job {job.id}: {exc}") from None
        if errors:
            if errors >= max_errors:
                raise FinetuneError(f"fine-tuning job {job.id}: {errors} polls in a row "
                                    "failed; giving up")
            continue
        status = str(getattr(job, "status", ""))
        say(f"job {job.id}: {status}")
        if status in DONE:
            if not DONE[status]:
                error = getattr(job, "error", None)
                why = getattr(error, "message", None) or (error.get("message") if isinstance(
                    error, dict) else None) or status
                raise FinetuneError(f"fine-tuning job {job.id} on {lm.model} {status}: {why}")
            tuned = getattr(job, "fine_tuned_model", None)
            if not tuned:
                raise FinetuneError(f"fine-tuning job {job.id} succeeded without a model name")
            prefix = lm.model.partition("/")[0] if "/" in lm.model else "openai"
            return HostedResult(model=f"{prefix}/{tuned}", job=str(job.id), file=str(upload.id),
                                seconds=time.monotonic() - start, polls=polls)
        interval = min(interval * 2, max_poll_s)
