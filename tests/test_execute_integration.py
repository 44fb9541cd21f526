"""The completion adapter on the real embedded model (Gemma 3 270M, base).

Small on purpose: a handful of calls. Marked ``integration``; skipped without llama_cpp.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "runtime"))

from lmpc.ir import (  # noqa: E402
    LMIR,
    Demo,
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
from lmpc.runtime.execute import Prediction, RunContext, run_batch  # noqa: E402
from lmpc.runtime.lm import LitellmTransport, LMClient  # noqa: E402

GEMMA = LMIR(name="local", model="local/gemma-3-270m", settings={"temperature": 0.0})
TRAIN = [
    ("An absolute delight from start to finish, I loved every minute.", "positive"),
    ("Dull, predictable and far too long. I walked out.", "negative"),
    ("The acting was superb and the story moved me to tears.", "positive"),
    ("A waste of money; the plot made no sense at all.", "negative"),
]
HELD_OUT = [
    ("Wonderful film with a brilliant cast, highly recommended.", "positive"),
    ("Terrible script and wooden acting, I regret watching it.", "negative"),
    ("One of the best movies I have seen this year.", "positive"),
    ("Boring and badly directed, a total disappointment.", "negative"),
]


def sentiment_program(shots: int) -> ProgramIR:
    text, label = TypeRef(kind="str"), TypeRef(kind="enum", name="Sentiment")
    sig = SignatureIR(name="Classify", instructions="Classify the sentiment of a movie review.",
                      inputs=[FieldIR(name="review", type=text)],
                      outputs=[FieldIR(name="sentiment", type=label)])
    demos = [Demo(values={"review": r, "sentiment": s}) for r, s in TRAIN[:shots]]
    step = StepIR(name="c", kind="predictor", predictor="Review.c",
                  args={"review": ExprIR(kind="ref", path=["review"])})
    return ProgramIR(
        enums={"Sentiment": EnumIR(name="Sentiment", values=["positive", "negative"])},
        signatures={"Classify": sig},
        predictors={"Review.c": PredictorIR(id="Review.c", signature=sig, demos=demos)},
        modules={"Review": ModuleIR(
            name="Review", inputs=[FieldIR(name="review", type=text)], steps=[step],
            returns={"sentiment": ExprIR(kind="ref", path=["c", "sentiment"])})},
    )


@pytest.fixture(scope="module")
def ctx() -> RunContext:
    return RunContext(client=LMClient(LitellmTransport()), program_lms={}, task_lm=GEMMA)


def correct(results: list, rows: list[tuple[str, str]]) -> int:
    return sum(isinstance(p, Prediction) and p.outputs["sentiment"] == s
               for p, (_, s) in zip(results, rows, strict=True))


def test_completion_adapter_returns_a_valid_enum(ctx: RunContext) -> None:
    [pred] = run_batch(sentiment_program(4), "Review", [{"review": HELD_OUT[0][0]}], ctx)
    assert isinstance(pred, Prediction), pred
    assert pred.outputs["sentiment"] in ("positive", "negative")
    assert ctx.client.usage.snapshot()["completion_tokens"] <= 8  # stopped at the newline


def test_four_shot_beats_zero_shot(ctx: RunContext) -> None:
    rows = [{"review": r} for r, _ in HELD_OUT]
    zero = correct(run_batch(sentiment_program(0), "Review", rows, ctx, threads=1), HELD_OUT)
    four = correct(run_batch(sentiment_program(4), "Review", rows, ctx, threads=1), HELD_OUT)
    assert four > zero or four == len(HELD_OUT), (zero, four)
    assert four >= len(HELD_OUT) - 1
