"""Write agent.jsonl: 40 unit-conversion questions with numeric answers, deterministic.

Answers are computed with the same tool the agent calls (agent_tools.convert), so a
correct trajectory scores exactly.

    python examples/data/make_agent.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agent_tools import convert  # noqa: E402

SEED = 3
ROWS = 40
PAIRS = [("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("ft", "m"), ("m", "ft"),
         ("in", "cm"), ("cm", "in"), ("l", "gal"), ("gal", "l"), ("oz", "g"), ("h", "min"),
         ("day", "h"), ("c", "f"), ("f", "c"), ("yd", "m")]
NAMES = {"km": "kilometers", "mi": "miles", "kg": "kilograms", "lb": "pounds", "ft": "feet",
         "m": "meters", "in": "inches", "cm": "centimeters", "l": "liters", "gal": "gallons",
         "oz": "ounces", "g": "grams", "h": "hours", "min": "minutes", "day": "days",
         "c": "degrees Celsius", "f": "degrees Fahrenheit", "yd": "yards"}
TEMPLATES = ["How many {to} are in {value} {frm}?", "Convert {value} {frm} to {to}.",
             "What is {value} {frm} in {to}?", "{value} {frm} is how many {to}?"]


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        frm, to = PAIRS[i % len(PAIRS)]
        value = rng.choice([1, 2, 3, 5, 7, 10, 12, 20, 26.2, 37, 50, 100, 250])
        question = rng.choice(TEMPLATES).format(value=value, frm=NAMES[frm], to=NAMES[to])
        rows.append({"question": question, "answer": convert(value, frm, to)})
    out = Path(__file__).with_name("agent.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
