"""Framework overhead per predictor call, lmpc against DSPy 3.4.1, in the same process.

Both sides run one-field classification (``ticket -> priority``) with the field-header
chat format and an LM that answers instantly, so the time measured is the framework's:
rendering the prompt, the LM client, parsing and coercion, the trace.

- "call": a fresh LM call each time (lmpc: ScriptedTransport, no cache; DSPy: DummyLM).
- "cache hit": the same request again, served by an in-memory cache (lmpc: a dict cache
  behind ``LMClient``; DSPy: ``dspy.LM`` with its memory cache, filled once through
  litellm's ``mock_response`` so no network is used). lmpc's SQLite cache is shown too.

Run: ``python bench/predict_overhead.py [--n 2000]``. Needs ``pip install dspy==3.4.1``
for the comparison (without it only lmpc's numbers are printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from lmpc.ir import (  # noqa: E402
    LMIR,
    EnumIR,
    ExprIR,
    FieldIR,
    ModuleIR,
    PredictorIR,
    ProgramIR,
    SignatureIR,
    StepIR,
    TypeRef,
)
from lmpc.runtime.cache import CachedReply, SQLiteCache  # noqa: E402
from lmpc.runtime.execute import RunContext, run_module  # noqa: E402
from lmpc.runtime.lm import LMClient  # noqa: E402
from lmpc.runtime.lm_types import LMResponse  # noqa: E402
from lmpc.runtime.scripted import ScriptedTransport  # noqa: E402

REPLY = "[[ ## priority ## ]]\nhigh\n\n[[ ## completed ## ]]"
INSTRUCTIONS = "Decide how urgent a support ticket is."
TICKET = "The site is down for all users since this morning."


class MemoryCache:
    """A dict behind a lock: the in-memory counterpart of DSPy's memory cache."""

    def __init__(self) -> None:
        self._data: dict[str, CachedReply] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, model: str, response: LMResponse) -> None:
        with self._lock:
            self._data[key] = CachedReply(response.text, response.prompt_tokens,
                                          response.completion_tokens, response.finish_reason)


def lmpc_program() -> ProgramIR:
    str_t, prio = TypeRef(kind="str"), TypeRef(kind="enum", name="Priority")
    sig = SignatureIR(name="Triage", instructions=INSTRUCTIONS,
                      inputs=[FieldIR(name="ticket", type=str_t)],
                      outputs=[FieldIR(name="priority", type=prio)])
    step = StepIR(name="t", kind="predictor", predictor="Support.t",
                  args={"ticket": ExprIR(kind="ref", path=["ticket"])})
    return ProgramIR(
        enums={"Priority": EnumIR(name="Priority", values=["low", "medium", "high"])},
        signatures={"Triage": sig},
        predictors={"Support.t": PredictorIR(id="Support.t", signature=sig)},
        modules={"Support": ModuleIR(name="Support", inputs=[FieldIR(name="ticket", type=str_t)],
                                     steps=[step],
                                     returns={"priority": ExprIR(kind="ref", path=["t",
                                                                                   "priority"])})},
    )


def lmpc_runner(cache: object | None) -> Callable[[], object]:
    program = lmpc_program()
    client = LMClient(ScriptedTransport(default=REPLY), cache=cache)  # type: ignore[arg-type]
    ctx = RunContext(client=client, program_lms={},
                     task_lm=LMIR(name="bench", model="openai/bench"))
    inputs = {"ticket": TICKET}

    def once() -> object:
        pred = run_module(program, "Support", inputs, ctx)
        assert pred.outputs["priority"] == "high"
        return pred

    return once


def dspy_runners() -> tuple[Callable[[], object], Callable[[], object]] | None:
    try:
        import dspy
        from dspy.utils.dummies import DummyLM
    except ImportError:
        return None
    from typing import Literal

    class Triage(dspy.Signature):
        """Decide how urgent a support ticket is."""

        ticket: str = dspy.InputField()
        priority: Literal["low", "medium", "high"] = dspy.OutputField()

    predict = dspy.Predict(Triage)

    class Endless(DummyLM):  # DummyLM consumes a list; answer the same forever
        def __init__(self) -> None:
            super().__init__({"": {"priority": "high"}})

    dummy = Endless()

    def call() -> object:
        with dspy.context(lm=dummy):
            out = predict(ticket=TICKET)
        assert out.priority == "high"
        return out

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    cached_lm = dspy.LM("openai/bench", cache=True, mock_response=REPLY)

    def hit() -> object:
        with dspy.context(lm=cached_lm):
            out = predict(ticket=TICKET)
        assert out.priority == "high"
        return out

    return call, hit


def measure(pairs: dict[str, tuple[Callable[[], object], Callable[[], object] | None]],
            n: int, rounds: int = 5) -> dict[str, tuple[float, float | None]]:
    """Best µs/call of each side; lmpc and DSPy alternate in every round, so that load
    from other processes on the machine hits both alike."""
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in pairs}
    for fns in pairs.values():  # warm up: imports, template compilation, caches
        for fn in fns:
            for _ in range(20 if fn else 0):
                fn()  # type: ignore[misc]
    for _ in range(rounds):
        for name, fns in pairs.items():
            for side, fn in enumerate(fns):
                if fn is None:
                    continue
                calls = n if side == 0 else max(10, n // 8)  # DSPy is slower: fewer calls
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                best[name][side] = min(best[name][side], (time.perf_counter() - start) / calls)
    return {name: (v[0] * 1e6, v[1] * 1e6 if v[1] != float("inf") else None)
            for name, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="lmpc calls per round")
    args = parser.parse_args(argv)
    dspy = dspy_runners()
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {
            "call": (lmpc_runner(None), dspy[0] if dspy else None),
            "cache hit (memory)": (lmpc_runner(MemoryCache()), dspy[1] if dspy else None),
            "cache hit (sqlite)": (lmpc_runner(SQLiteCache(Path(tmp) / "c.sqlite")), None),
        }
        results = measure(pairs, args.n)
    print(f"{'per predict call':<22}{'lmpc µs':>10}{'dspy µs':>10}{'lmpc/dspy':>11}")
    for name, (ours, theirs) in results.items():
        if theirs is None:
            print(f"{name:<22}{ours:>10.1f}{'-':>10}{'-':>11}")
        else:
            print(f"{name:<22}{ours:>10.1f}{theirs:>10.1f}{ours / theirs:>11.3f}")
    if dspy is None:
        print("(dspy is not installed: pip install dspy==3.4.1 to compare)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
