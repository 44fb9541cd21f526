"""evaluate(): parallel runs, per-example scores, failures counted; the LM judge metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_pipeline_fixtures import oracle_reply, sentiment_program

from lmpc.compiler.pipeline import make_run_ctx
from lmpc.eval.evaluate import evaluate
from lmpc.eval.metrics import build_metric
from lmpc.ir import Example, FieldIR, MetricIR, SignatureIR, TypeRef
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMError
from lmpc.runtime.scripted import ScriptedTransport, render_request


def _rows() -> list[Example]:
    words = ["great", "awful", "superb", "boring", "nice", "bad"]
    labels = ["positive", "negative"] * 3
    return [Example({"text": f"The movie was {w}."}, {"label": lab}, f"r.jsonl:{i + 1}", i)
            for i, (w, lab) in enumerate(zip(words, labels, strict=True))]


def _setup(tmp_path: Path, fn: Any) -> tuple[Any, Any, Any]:
    program = sentiment_program(tmp_path)
    client = LMClient(ScriptedTransport(fn=fn), sleep=lambda s: None, max_retries=0)
    ctx = make_run_ctx(program, client, program.lms["fake"])
    metric = build_metric(program.metrics["acc"], program)
    return program, ctx, metric


def test_scores_in_order_and_failures_counted(tmp_path: Path) -> None:
    def reply(request: Any) -> Any:
        prompt = render_request(request)
        if "boring" in prompt.rsplit("Text:", 1)[-1]:
            return LMError("model exploded")
        if "nice" in prompt.rsplit("Text:", 1)[-1]:
            return " negative"  # wrong
        return " " + oracle_reply(prompt)

    program, ctx, metric = _setup(tmp_path, reply)
    events: list[dict[str, Any]] = []
    result = evaluate(program, "Classify", _rows(), metric, ctx, threads=3,
                      failure_score=0.25, progress=events.append)
    assert result.n == 6 and result.failures == 1
    assert result.scores == [1.0, 1.0, 1.0, 0.25, 0.0, 1.0]
    assert result.score == sum(result.scores) / 6
    assert result.predictions[3] is None and result.predictions[0].outputs["label"] == "positive"
    assert "r.jsonl:4" in result.errors[0] and "model exploded" in result.errors[0]
    assert events[-1]["done"] == 6 and events[-1]["total"] == 6


def test_unparseable_reply_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    program, ctx, metric = _setup(tmp_path, lambda r: " maybe?")
    result = evaluate(program, "Classify", _rows(), metric, ctx)
    assert result.failures == 6 and result.score == 0.0 and len(result.scores) == 6


def test_empty_set(tmp_path: Path) -> None:
    program, ctx, metric = _setup(tmp_path, lambda r: " positive")
    result = evaluate(program, "Classify", [], metric, ctx)
    assert (result.score, result.n, result.failures) == (0.0, 0, 0)


def test_judge_metric_runs_its_signature_through_the_runtime(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path)
    program.signatures["Grade"] = SignatureIR(
        name="Grade", instructions="Is the label right for the review?",
        inputs=[FieldIR(name="text", type=TypeRef(kind="str")),
                FieldIR(name="gold_label", type=TypeRef(kind="str")),
                FieldIR(name="label", type=TypeRef(kind="str"))],
        outputs=[FieldIR(name="score", type=TypeRef(kind="int"))],
    )
    seen: list[str] = []

    def reply(request: Any) -> str:
        prompt = render_request(request)
        seen.append(prompt)
        return " 4"

    client = LMClient(ScriptedTransport(fn=reply), sleep=lambda s: None)
    ctx = make_run_ctx(program, client, program.lms["fake"])
    ir = MetricIR(name="j", kind="judge", signature="Grade", options={"scale": 5})
    judge = build_metric(ir, program, ctx)
    example = Example({"text": "The movie was great."}, {"label": "positive"})
    assert judge(example, {"label": "negative"}) == 0.8
    assert judge(example, {"label": "negative"}, trace=[object()]) == 0.0  # strict
    assert "Gold Label: positive" in seen[0] and "Label: negative" in seen[0]
    assert judge.uses_lm
