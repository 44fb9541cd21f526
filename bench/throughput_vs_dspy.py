"""Evaluation throughput against a hosted model, lmpc against DSPy 3.4.1, in one run.

Both sides score the same 64 support tickets (``examples/data/classify.jsonl``) with one
predictor (``ticket -> category``, the field-header chat format) against the same
loopback server (``bench/_loopback.py``), which answers every request after 100 ms like
a hosted model would. Each (side, threads) point runs in a fresh process: one warm-up
call first (it imports litellm and opens a connection), then the timed evaluation, so
start-up is excluded. No cache on either side: every row is a request.

- lmpc: ``lmpc.eval.evaluate`` with ``threads``, through ``LMClient`` + ``LitellmTransport``.
- DSPy: ``dspy.Evaluate(num_threads=threads)`` over ``dspy.Predict`` with ``ChatAdapter``,
  ``dspy.LM(..., cache=False)``. DSPy 3.4.1 sends these calls with its own HTTP client
  (its vendored ``lm15`` engine) and never imports litellm; ``dspy_litellm`` is the same
  with ``engine="litellm"``: DSPy through litellm, the path lmpc takes.

The server counts the requests it holds at once (``peak_in_flight``): that, not a
framework's own bookkeeping, says how many were in flight.

Run: ``python bench/throughput_vs_dspy.py [--threads 1,4,16,64] [--rows 64] [--repeat 1]``
(writes ``bench/results/throughput_vs_dspy.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # measure this checkout, not whatever lmpc is installed

MODEL = "hosted_vllm/loopback"
CATEGORIES = ("billing", "technical", "shipping", "account")
INSTRUCTIONS = "Route a customer support ticket to the team that handles it."
TICKET_DESC = "the customer's message"
WARM_UP = "My order arrived but the box was open."

SOURCE = """\
lm hosted = "{model}" {{ api_base: "{api_base}", temperature: 0.0, max_tokens: 16 }}

enum Category {{ {categories} }}

signature Classify {{
  \"\"\"{instructions}\"\"\"
  in ticket: str "{ticket_desc}"
  out category: Category
}}

module Router(ticket: str) -> (category: Category) {{
  c = predict Classify(ticket = ticket)
  return (category = c.category)
}}

metric accuracy = exact_match(category)
"""


def rows(n: int) -> list[dict[str, str]]:
    """The first ``n`` tickets of the quick start's data, as (ticket, category)."""
    path = ROOT / "examples" / "data" / "classify.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()[:n]
    return [{"ticket": r["text"], "category": r["category"]} for r in map(json.loads, lines)]


# ------------------------------------------------------------------ one side, one point


def lmpc_side(api_base: str, threads: int, n: int) -> dict[str, Any]:
    from lmpc.compiler.check.program import load_program
    from lmpc.compiler.pipeline import make_run_ctx, task_lm_for
    from lmpc.eval.metrics import build_metric
    from lmpc.ir import Example
    from lmpc.runtime.execute import run_module
    from lmpc.runtime.lm import LitellmTransport, LMClient

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "router.lmp"
        source.write_text(SOURCE.format(model=MODEL, api_base=api_base,
                                        categories=", ".join(CATEGORIES),
                                        instructions=INSTRUCTIONS, ticket_desc=TICKET_DESC))
        program, diagnostics, _ = load_program(source)
        assert program is not None, diagnostics
    client = LMClient(LitellmTransport())  # no cache: every row is a request
    ctx = make_run_ctx(program, client, task_lm_for(program, None, None))
    metric = build_metric(program.metrics["accuracy"], program, ctx)
    run_module(program, "Router", {"ticket": WARM_UP}, ctx)  # start-up, not timed
    examples = [Example(inputs={"ticket": r["ticket"]}, labels={"category": r["category"]},
                        index=i) for i, r in enumerate(rows(n))]
    from lmpc.eval.evaluate import evaluate

    cpu, started = time.process_time(), time.perf_counter()
    result = evaluate(program, "Router", examples, metric, ctx, threads=threads)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "score": result.score,
            "failures": result.failures, "n": result.n,
            "client_peak_in_flight": client.peak_in_flight().get(MODEL, 0)}


def dspy_side(api_base: str, threads: int, n: int, engine: str = "auto") -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    from typing import Literal

    import dspy

    signature = dspy.Signature(
        {"ticket": (str, dspy.InputField(desc=TICKET_DESC)),
         "category": (Literal[CATEGORIES], dspy.OutputField())},  # type: ignore[valid-type]
        INSTRUCTIONS)
    lm = dspy.LM(MODEL, api_base=api_base, api_key="none", cache=False, temperature=0.0,
                 max_tokens=16, engine=engine)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False))
    program = dspy.Predict(signature)
    program(ticket=WARM_UP)  # start-up, not timed
    devset = [dspy.Example(**r).with_inputs("ticket") for r in rows(n)]

    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        return float(getattr(prediction, "category", None) == example.category)

    evaluator = dspy.Evaluate(devset=devset, metric=metric, num_threads=threads,
                              display_progress=False, display_table=False,
                              max_errors=len(devset) + 1)
    cpu, started = time.process_time(), time.perf_counter()
    result = evaluator(program)
    seconds = time.perf_counter() - started
    failures = sum(1 for _, pred, _ in result.results if not hasattr(pred, "category"))
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu,
            "score": float(result.score) / 100, "failures": failures, "n": len(devset),
            "dspy_version": dspy.__version__, "engine": engine,
            "imported_litellm": "litellm" in sys.modules}


# ------------------------------------------------------------------ the driver


def point(side: str, api_base: str, threads: int, n: int) -> dict[str, Any]:
    """One side at one thread count, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_OFFLINE_MODE": "true"}
    out = subprocess.run([sys.executable, __file__, "--side", side, "--api-base", api_base,
                          "--threads", str(threads), "--rows", str(n)],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{side} at {threads} threads failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,4,16,64")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.1, help="server seconds per reply")
    parser.add_argument("--repeat", type=int, default=1, help="runs per point (best kept)")
    parser.add_argument("--sides", default="lmpc,dspy,dspy_litellm")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "throughput_vs_dspy.json")
    args = parser.parse_args()
    if args.side:  # a child: one point, JSON on stdout
        if args.side == "lmpc":
            out = lmpc_side(args.api_base, int(args.threads), args.rows)
        else:  # dspy: its own HTTP client; dspy_litellm: through litellm, as lmpc
            engine = "litellm" if args.side == "dspy_litellm" else "auto"
            out = dspy_side(args.api_base, int(args.threads), args.rows, engine)
        print(json.dumps(out))
        return
    from _loopback import loopback_server

    threads = [int(t) for t in args.threads.split(",")]
    sides = args.sides.split(",")
    points: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with loopback_server(args.delay) as server:
        for t in threads:
            for _ in range(args.repeat):
                for side in sides:  # interleaved, so both see the same machine load
                    server.reset()
                    result = point(side, server.api_base, t, args.rows)
                    stats = server.stats()
                    result.update(side=side, threads=t, server_requests=stats["requests"],
                                  server_peak_in_flight=stats["peak_in_flight"])
                    points.append(result)
                    print(f"{side:12} threads {t:3}: {result['seconds']:6.2f} s  "
                          f"peak in flight {stats['peak_in_flight']:3}  "
                          f"score {result['score']:.3f}  failures {result['failures']}",
                          flush=True)
    summary = summarize(points, sides, threads)
    print(table(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "rows": args.rows, "server_delay_s": args.delay, "repeat": args.repeat,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(), "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                          time.gmtime()),
        "summary": summary, "points": points}, indent=2) + "\n", encoding="utf-8")


def summarize(points: list[dict[str, Any]], sides: list[str], threads: list[int]
              ) -> list[dict[str, Any]]:
    """Per thread count: each side's best time, its speed-up over its own 1 thread, and
    lmpc's time over DSPy's."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for p in points:
        key = (p["side"], p["threads"])
        if key not in best or p["seconds"] < best[key]["seconds"]:
            best[key] = p
    out = []
    for t in threads:
        row: dict[str, Any] = {"threads": t}
        for side in sides:
            p = best.get((side, t))
            if p is None:
                continue
            base = best.get((side, threads[0]))
            row[side] = {"seconds": round(p["seconds"], 3), "cpu_s": round(p["cpu_s"], 3),
                         "peak_in_flight": p["server_peak_in_flight"],
                         "speedup": round(base["seconds"] / p["seconds"], 1) if base else None,
                         "score": p["score"], "failures": p["failures"]}
        for other in ("dspy", "dspy_litellm"):
            if "lmpc" in row and other in row:
                row[f"lmpc_over_{other}"] = round(row["lmpc"]["seconds"]
                                                  / row[other]["seconds"], 2)
        out.append(row)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    sides = [s for s in ("lmpc", "dspy", "dspy_litellm") if any(s in r for r in summary)]
    lines = ["| threads | " + " | ".join(f"{s} s (in flight, speed-up, CPU s)" for s in sides)
             + " | lmpc/DSPy |", "|---" * (len(sides) + 2) + "|"]
    for row in summary:
        cells = []
        for side in sides:
            p = row.get(side)
            cells.append("-" if p is None else f"{p['seconds']:.2f} ({p['peak_in_flight']}, "
                         f"{p['speedup']}x, {p['cpu_s']:.2f})")
        ratio = row.get("lmpc_over_dspy")
        lines.append(f"| {row['threads']} | " + " | ".join(cells) +
                     f" | {'-' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
