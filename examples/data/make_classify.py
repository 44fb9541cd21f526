"""Write classify.jsonl: 200 short support tickets, 50 per category, deterministic.

Each ticket is drawn from hand-written templates with slot fillers, so the texts vary
in wording while the category stays unambiguous. Run from anywhere:

    python examples/data/make_classify.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PER_CATEGORY = 50
SEED = 7

SLOTS = {
    "amount": ["$12.99", "$49", "$120", "$8.50", "$299", "$19.99", "$75"],
    "period": ["this month", "last month", "in March", "twice this week", "yesterday"],
    "plan": ["Pro plan", "family plan", "annual plan", "basic plan", "team plan"],
    "device": ["iPhone", "Android phone", "laptop", "Windows PC", "Mac", "tablet"],
    "feature": ["export button", "search bar", "dashboard", "upload page", "sync",
                "notifications", "checkout page", "video player"],
    "error": ["error 500", "a blank screen", "a spinning wheel", "error code 0x80",
              "'connection refused'", "a timeout"],
    "item": ["order", "package", "parcel", "delivery", "shipment"],
    "carrier": ["UPS", "FedEx", "DHL", "the courier", "the post office"],
    "days": ["three days", "a week", "two weeks", "10 days", "five days"],
    "place": ["my old address", "the wrong city", "my neighbor", "a locker", "the office"],
    "cred": ["password", "email address", "username", "phone number", "two-factor code"],
    "where": ["the app", "the website", "my phone", "the desktop app", "my laptop"],
}

# Openers and closers vary the wording without changing the category.
OPENERS = ["", "", "", "Hi, ", "Hello, ", "Urgent: ", "Help! "]
CLOSERS = ["", "", "", " Thanks.", " Please help.", " Any update?", " This is annoying."]

TEMPLATES = {
    "billing": [
        "I was charged {amount} {period} but I cancelled.",
        "Why did my card get billed twice {period}?",
        "Please refund the {amount} charge on my {plan}.",
        "My invoice shows {amount}, not the price I signed up for.",
        "Can I switch my {plan} to monthly billing?",
        "The {plan} price went up {period} without notice.",
        "I need a receipt for the {amount} payment.",
        "My payment of {amount} failed but the money left my bank.",
        "How do I update the credit card for my {plan}?",
        "I was billed for the {plan} after the free trial ended.",
        "Your tax on my {amount} invoice looks wrong.",
        "Please cancel the auto-renewal of my {plan}, it costs {amount}.",
    ],
    "technical": [
        "The {feature} shows {error} on my {device}.",
        "App crashes every time I open the {feature}.",
        "The {feature} has not worked since the update on my {device}.",
        "I keep getting {error} when I use the {feature}.",
        "The {feature} is very slow on my {device}.",
        "Nothing loads on my {device}, just {error}.",
        "The {feature} freezes after a few seconds.",
        "After installing the update my {device} app shows {error}.",
        "Files won't upload, the {feature} gives {error}.",
        "The {feature} button does nothing when I tap it on my {device}.",
        "Sync between my {device} and the web app is broken.",
        "Bug: the {feature} displays garbled text on my {device}.",
    ],
    "shipping": [
        "My {item} has not arrived after {days}.",
        "Tracking for my {item} has not moved in {days}.",
        "{carrier} says my {item} was delivered but I never got it.",
        "My {item} went to {place} instead of my home.",
        "Can I change the delivery address of my {item}?",
        "The {item} arrived damaged, the box was crushed.",
        "When will my {item} ship? It has been {days}.",
        "{carrier} lost my {item}.",
        "Half of my {item} is missing, only one box came.",
        "Is express delivery available for my {item}?",
        "My {item} is stuck in customs for {days}.",
        "The tracking number for my {item} does not work on the {carrier} site.",
    ],
    "account": [
        "I forgot my {cred} and cannot log in.",
        "How do I change the {cred} on my account?",
        "My account was locked after too many login attempts on {where}.",
        "Please delete my account and all my data.",
        "Someone else logged into my account, I got an alert on {where}.",
        "I never received the password reset email on {where}.",
        "Can I merge my two accounts into one?",
        "I want to add a second user to my account from {where}.",
        "My profile shows the wrong {cred}.",
        "How do I turn on two-factor login for my account?",
        "I cannot verify my {cred}, the link expired.",
        "My account says it is suspended when I sign in on {where}.",
    ],
}


def fill(template: str, rng: random.Random) -> str:
    """Replace each {slot} with a random filler and add an opener and a closer."""
    values = {name: rng.choice(options) for name, options in SLOTS.items()}
    text = template.format(**values)
    opener = rng.choice(OPENERS)
    if opener:
        text = opener + text[0].lower() + text[1:] if not text.startswith("I ") else opener + text
    return text + rng.choice(CLOSERS)


def tickets(rng: random.Random) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for category, templates in TEMPLATES.items():
        seen: set[str] = set()
        for _ in range(100 * PER_CATEGORY):  # bounded: fail loudly, never loop forever
            if len(seen) == PER_CATEGORY:
                break
            text = fill(rng.choice(templates), rng)
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "category": category})
        if len(seen) < PER_CATEGORY:
            raise SystemExit(f"only {len(seen)} distinct {category} tickets; add templates")
    rng.shuffle(rows)
    return rows


def main() -> None:
    out = Path(__file__).with_name("classify.jsonl")
    rows = tickets(random.Random(SEED))
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
