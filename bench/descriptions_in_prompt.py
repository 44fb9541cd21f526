"""Do field and enum value descriptions help the embedded base model? (the measurement
behind what the completion layout leaves out; ``lmpc show`` says what it leaves out).

The completion layout (``lmpc/runtime/adapters/completion.py``) writes, under the
instructions, one line per output with its description and its type in words. Four
variants of that guide, on two classification tasks with Gemma 3 270M, each task's
every row, temperature 0, under the grammar as lmpc sends it:

- ``none``: what lmpc sends (no input descriptions, no enum value descriptions);
- ``enum``: enum values with their descriptions (``billing (charges, refunds, ...)``);
- ``inputs``: a line per described input (``Ticket — the customer's message.``);
- ``both``.

Each variant is scored zero-shot on all rows, and with four labeled demos (drawn with a
fixed seed; scored on the other rows). Accuracy is a count, so machine load does not
change it; the load is printed anyway.

Run: python bench/descriptions_in_prompt.py [--cache-dir DIR]
Writes bench/results/descriptions_in_prompt.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

from lmpc.compiler.check.program import check_text
from lmpc.eval.data import load_examples
from lmpc.ir import Example, ProgramIR, SignatureIR
from lmpc.runtime.adapters.base import field_view
from lmpc.runtime.adapters.completion import CompletionAdapter
from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.lm import LitellmTransport, LMClient
from lmpc.runtime.lm_types import LMRequest

MODEL = "local/gemma-3-270m"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "bench" / "results" / "descriptions_in_prompt.json"
VARIANTS = ("none", "enum", "inputs", "both")

# The second task: the reviews of examples/data/reviews.jsonl, with described values.
SENTIMENT = '''
enum Sentiment {
  positive "the reviewer is happy with the product",
  neutral "mixed feelings, or neither happy nor unhappy",
  negative "the reviewer is unhappy with the product",
}
signature Rate {
  """Say how the reviewer feels about the product."""
  in review: str "a customer's product review"
  out sentiment: Sentiment
}
dataset reviews = jsonl "data/reviews.jsonl" { inputs: [review] }
'''


class Variant(CompletionAdapter):
    """The completion layout with descriptions it leaves out put back in."""

    def __init__(self, values: bool, inputs: bool) -> None:
        self.values, self.inputs = values, inputs
        self.name = f"completion-{int(values)}{int(inputs)}"  # its own prompt memo entries

    def guide(self, signature: SignatureIR, program: ProgramIR) -> list[dict[str, str]]:
        outputs = [field_view(f, program, detailed=self.values) for f in signature.outputs]
        described = [field_view(f, program) for f in signature.inputs if f.desc]
        return (described if self.inputs else []) + outputs


def task(source: str, path: Path, signature: str, dataset: str) -> tuple[Any, ...]:
    program, diags, _ = check_text(source, str(path))
    assert program is not None and not diags, [str(d) for d in diags]
    sig = program.signatures[signature]
    ds = program.datasets[dataset]
    rows = load_examples(ds, path.parent, [f.name for f in sig.inputs])
    return program, sig, rows


def score(client: LMClient, adapter: Variant, program: ProgramIR, sig: SignatureIR,
          rows: list[Example], demos: list[dict[str, Any]]) -> int:
    out = sig.outputs[0].name
    right = 0
    for row in rows:
        rendered = adapter.format(None, sig, demos, row.inputs, program)  # type: ignore[arg-type]
        settings = {"temperature": 0.0, "max_tokens": rendered.max_tokens,
                    "stop": list(rendered.stop), "grammar": rendered.grammar}
        reply = client.complete(LMRequest(model=MODEL, mode="text", prompt=rendered.prompt,
                                          settings=settings))
        try:
            right += adapter.parse(reply.text, sig, program)[out] == row.labels[out]
        except ParseFailure:
            pass
    return right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", help="LM cache (default: none, every call generates)")
    args = parser.parse_args()
    classify_src = (EXAMPLES / "classify.lmp").read_text()
    tasks = {
        "classify": task(classify_src, EXAMPLES / "classify.lmp", "Classify", "tickets"),
        "sentiment": task(SENTIMENT, EXAMPLES / "bench_sentiment.lmp", "Rate", "reviews"),
    }
    cache = SQLiteCache(Path(args.cache_dir) / "cache.sqlite") if args.cache_dir else None
    client = LMClient(LitellmTransport(), cache=cache)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"model": MODEL, "load_before": load_before, "tasks": {}}
    for name, (program, sig, rows) in tasks.items():
        shuffled = list(rows)
        random.Random(0).shuffle(shuffled)
        demos = [r.values for r in shuffled[:4]]
        rest = shuffled[4:]
        table: dict[str, Any] = {"n_zero_shot": len(rows), "n_four_shot": len(rest)}
        for variant in VARIANTS:
            adapter = Variant(values=variant in ("enum", "both"),
                              inputs=variant in ("inputs", "both"))
            zero = score(client, adapter, program, sig, rows, [])
            four = score(client, adapter, program, sig, rest, demos)
            table[variant] = {"zero_shot": zero, "four_shot": four}
            print(f"{name:<10} {variant:<7} zero-shot {zero}/{len(rows)} "
                  f"({zero / len(rows):.1%})  4-shot {four}/{len(rest)} "
                  f"({four / len(rest):.1%})", flush=True)
        results["tasks"][name] = table
    results["load_after"] = os.getloadavg()
    print(f"load average before {load_before}, after {results['load_after']}")
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
