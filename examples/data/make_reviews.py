"""Write reviews.jsonl: 60 short product reviews with sentiment and stars, deterministic.

    python examples/data/make_reviews.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 5
PER_STARS = 12
PRODUCTS = ["kettle", "backpack", "desk lamp", "phone case", "blender", "rain jacket",
            "headphones", "coffee grinder", "yoga mat", "water bottle", "toaster", "umbrella"]
BY_STARS = {
    5: ["I love this {p}. It works perfectly and looks great.",
        "Best {p} I have owned. Worth every cent.",
        "Fantastic {p}, fast delivery, would buy again.",
        "This {p} exceeded my expectations in every way."],
    4: ["Good {p}, does the job well. The color is a bit off.",
        "Solid {p} for the price, only small flaws.",
        "I like the {p}, though the manual is confusing.",
        "Nice {p}. Setup took a while but it works well."],
    3: ["The {p} is okay. Nothing special, nothing wrong.",
        "An average {p}. It works but feels cheap.",
        "Mixed feelings about this {p}: decent, but a bit noisy.",
        "The {p} is fine for now; we will see how long it lasts."],
    2: ["The {p} broke after two weeks. Disappointing.",
        "Not happy with this {p}; it is flimsy and slow.",
        "The {p} looks nice but barely works.",
        "Poor {p}. Customer service did not help much."],
    1: ["Terrible {p}. It stopped working on day one.",
        "Do not buy this {p}. Complete waste of money.",
        "The {p} arrived broken and the refund took a month.",
        "Worst {p} ever, it smells of burnt plastic."],
}
SENTIMENT = {5: "positive", 4: "positive", 3: "neutral", 2: "negative", 1: "negative"}


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for stars, templates in BY_STARS.items():
        seen: set[str] = set()
        while len(seen) < PER_STARS:  # 4 templates x 12 products: always enough
            text = rng.choice(templates).format(p=rng.choice(PRODUCTS))
            if text not in seen:
                seen.add(text)
                rows.append({"review": text, "sentiment": SENTIMENT[stars], "stars": stars})
    rng.shuffle(rows)
    out = Path(__file__).with_name("reviews.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
