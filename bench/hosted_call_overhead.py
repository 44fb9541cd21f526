"""CPU of one hosted call: lmpc's LMClient against a bare ``litellm.completion`` loop and
DSPy 3.4.1's ``dspy.LM`` (its own HTTP client, and ``engine="litellm"``), in one run.

Every (path, threads) point runs in a fresh process against ``bench/_loopback.py`` (its
own process, 100 ms a reply by default): the import and one warm-up call are start-up
(reported apart), then ``--calls`` chat calls, one after another or from a thread pool.
The server counts the requests it holds at once. What the table says per call is the
process's CPU divided by the calls: with one GIL that is what bounds a thread pool.

- ``lmpc``: ``LMClient(LitellmTransport())`` (no cache), as ``lmpc eval`` sends a row.
- ``litellm``: ``litellm.completion(...)`` with the same arguments, nothing around it.
- ``dspy``: ``dspy.LM(..., cache=False)`` (engine "auto": DSPy's vendored lm15 client,
  litellm is never imported).
- ``dspy_litellm``: the same with ``engine="litellm"``.

Run: ``python bench/hosted_call_overhead.py [--calls 64] [--threads 1,64]``
(writes ``bench/results/hosted_call_overhead.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

MODEL = "hosted_vllm/loopback"
PROMPT = "[[ ## ticket ## ]]\nMy parcel never arrived.\n\nRespond with the category."
PATHS = ("lmpc", "litellm", "dspy", "dspy_litellm")
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


def caller(path: str, api_base: str) -> Any:
    """A function sending call ``i`` (a distinct prompt each) down ``path``."""
    def messages(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{PROMPT} ({i})"}]

    if path == "lmpc":
        from lmpc.runtime.lm import LitellmTransport, LMClient, LMRequest

        client = LMClient(LitellmTransport())
        settings = {"api_base": api_base, "temperature": 0.0, "max_tokens": 16}
        return lambda i: client.complete(LMRequest(MODEL, "chat", messages=tuple(messages(i)),
                                                   settings=settings))
    if path == "litellm":
        os.environ.update(OFFLINE)
        import litellm

        litellm.suppress_debug_info = True
        return lambda i: litellm.completion(model=MODEL, messages=messages(i),
                                            api_base=api_base, api_key="none",
                                            temperature=0.0, max_tokens=16, max_retries=0)
    os.environ.update(OFFLINE)
    import dspy

    lm = dspy.LM(MODEL, api_base=api_base, api_key="none", cache=False, temperature=0.0,
                 max_tokens=16, engine="litellm" if path == "dspy_litellm" else "auto")
    return lambda i: lm(messages=messages(i))


def child(path: str, api_base: str, calls: int, threads: int) -> dict[str, Any]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    call = caller(path, api_base)
    call(-1)  # warm-up: connection, lazy imports
    startup = {"startup_wall_s": time.perf_counter() - wall0,
               "startup_cpu_s": time.process_time() - cpu0}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if threads == 1:
        for i in range(calls):
            call(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(call, range(calls)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {**startup, "wall_s": wall, "cpu_ms_per_call": 1000 * cpu / calls,
            "imported_litellm": "litellm" in sys.modules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--threads", default="1,64")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "hosted_call_overhead.json")
    args = parser.parse_args()
    if args.child:
        path, api_base, calls, threads = args.child
        print(json.dumps(child(path, api_base, int(calls), int(threads))))
        return
    from _loopback import loopback_server

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in OFFLINE:
        env.pop(name, None)  # lmpc sets them itself; the other paths set them above
    points = []
    load_before = os.getloadavg()
    with loopback_server(args.delay) as server:
        for threads in (int(t) for t in args.threads.split(",")):
            for path in args.paths.split(","):  # interleaved: the same load for each
                server.reset()
                out = subprocess.run([sys.executable, __file__, "--child", path,
                                      server.api_base, str(args.calls), str(threads)],
                                     env=env, capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise RuntimeError(f"{path} failed:\n{out.stderr[-2000:]}")
                point = {"path": path, "threads": threads,
                         **json.loads(out.stdout.strip().splitlines()[-1]),
                         "server_peak_in_flight": server.stats()["peak_in_flight"]}
                points.append(point)
                print(f"{path:12} threads {threads:3}: {point['cpu_ms_per_call']:5.2f} ms CPU "
                      f"a call, {point['wall_s']:5.2f} s for {args.calls}, "
                      f"{point['server_peak_in_flight']:2} in flight; start-up "
                      f"{point['startup_wall_s']:5.2f} s ({point['startup_cpu_s']:.2f} s CPU)",
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "calls": args.calls, "server_delay_s": args.delay, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "points": points}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
