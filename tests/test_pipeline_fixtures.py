"""Shared builders for the pipeline/artifact/build tests: a tiny sentiment program."""

from __future__ import annotations

import json
from pathlib import Path

from lmpc.ir import (
    LMIR,
    DatasetIR,
    EnumIR,
    ExprIR,
    FieldIR,
    MetricIR,
    ModuleIR,
    OptimizeIR,
    PassIR,
    PredictorIR,
    ProgramIR,
    SignatureIR,
    SourceIR,
    SplitIR,
    StepIR,
    TypeRef,
)

POSITIVE = ["great", "loved it", "wonderful", "superb", "fantastic", "excellent", "nice",
            "brilliant", "amazing", "delightful"]
NEGATIVE = ["awful", "hated it", "terrible", "boring", "dreadful", "poor", "bad", "dull",
            "horrible", "annoying"]


def write_rows(folder: Path, name: str = "reviews.jsonl") -> Path:
    """20 labeled reviews, alternating positive and negative."""
    rows = []
    for pos, neg in zip(POSITIVE, NEGATIVE, strict=True):
        rows.append({"text": f"The movie was {pos}.", "label": "positive"})
        rows.append({"text": f"The movie was {neg}.", "label": "negative"})
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sentiment_program(folder: Path, passes: list[PassIR] | None = None,
                      split: SplitIR | None = None) -> ProgramIR:
    """``Classify(text) -> label`` with one predict step, a dataset and an optimize block."""
    write_rows(folder)
    string = TypeRef(kind="str")
    label = TypeRef(kind="enum", name="Sentiment")
    sig = SignatureIR(name="Judge", instructions="Classify the review.",
                      inputs=[FieldIR(name="text", type=string)],
                      outputs=[FieldIR(name="label", type=label)])
    predictor = PredictorIR(id="Classify.p", signature=sig)
    module = ModuleIR(
        name="Classify", inputs=[FieldIR(name="text", type=string)],
        outputs=[FieldIR(name="label", type=label)],
        steps=[StepIR(name="p", kind="predictor", predictor="Classify.p",
                      args={"text": ExprIR(kind="ref", path=["text"])})],
        returns={"label": ExprIR(kind="ref", path=["p", "label"])},
    )
    source = folder / "prog.lmp"
    source.write_text("// the source of this test program\n")
    return ProgramIR(
        sources=[SourceIR(path=str(source), sha256="0" * 64)],
        base_dir=str(folder),
        lms={"fake": LMIR(name="fake", model="scripted/fake", model_type="text",
                          settings={"api_key": {"env": "FAKE_KEY"}})},
        enums={"Sentiment": EnumIR(name="Sentiment", values=["positive", "negative"])},
        signatures={"Judge": sig},
        modules={"Classify": module},
        predictors={"Classify.p": predictor},
        datasets={"reviews": DatasetIR(
            name="reviews", format="jsonl", path="reviews.jsonl", inputs=["text"],
            split=split or SplitIR(train=0.4, val=0.3, test=0.3, seed=3))},
        metrics={"acc": MetricIR(name="acc", kind="exact_match", field="label")},
        optimizes=[OptimizeIR(program="Classify", metric="acc", dataset="reviews",
                              lms={"lm": "fake"}, seed=1, passes=passes or [])],
    )


def oracle_reply(prompt: str) -> str:
    """Classify the last review in a prompt correctly (a perfect scripted model)."""
    tail = prompt.rsplit("The movie was", 1)[-1]
    return "positive" if any(word in tail for word in POSITIVE) else "negative"
