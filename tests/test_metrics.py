"""Built-in metrics, combinations, Python callables and strictness under a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmpc.eval.metrics import MetricError, build_metric
from lmpc.ir import Example, MetricIR, ProgramIR
from lmpc.runtime.execute_types import Prediction, TraceStep

TRACE = [TraceStep(predictor="M.p", inputs={}, outputs={})]


def _ex(**labels: object) -> Example:
    return Example(inputs={"q": "?"}, labels=dict(labels), source="d.jsonl:4")


def _metric(kind: str, field: str = "a", program: ProgramIR | None = None, **options: object):
    return build_metric(MetricIR(name="m", kind=kind, field=field, options=options), program)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "output", "score"),
    [
        ("The Eiffel Tower", "eiffel tower!", 1.0),
        ("Paris", "  PARIS  ", 1.0),
        ("Paris", "Lyon", 0.0),
        (["paris", "Paris, France"], "paris france", 1.0),
        (3, "3", 1.0),
        (True, "true", 1.0),
        (["a", "b"], ["A", "b."], 1.0),
    ],
)
def test_exact_match_normalizes(label: object, output: object, score: float) -> None:
    assert _metric("exact_match")(_ex(a=label), Prediction({"a": output})) == score


def test_exact_match_without_normalization() -> None:
    m = _metric("exact_match", normalize=False)
    assert m(_ex(a="Paris"), {"a": "paris"}) == 0.0 and m(_ex(a="Paris"), {"a": "Paris "}) == 1.0


def test_f1_contains_numeric_regex() -> None:
    assert _metric("f1")(_ex(a="the red car"), {"a": "a red bus"}) == pytest.approx(0.5)
    assert _metric("f1")(_ex(a="x"), {"a": ""}) == 0.0
    assert _metric("contains")(_ex(a="Paris"), {"a": "It is paris, France"}) == 1.0
    assert _metric("contains", value="sorry")(_ex(), {"a": "no"}) == 0.0
    assert _metric("contains")(_ex(a="b"), {"a": ["a", "B"]}) == 1.0
    assert _metric("numeric", tolerance=0.01)(_ex(a=3.14159), {"a": "about 3.145"}) == 1.0
    assert _metric("numeric")(_ex(a="1,200"), {"a": 1200}) == 1.0
    assert _metric("numeric")(_ex(a=2), {"a": "none"}) == 0.0
    assert _metric("numeric", tolerance=0.1, relative=True)(_ex(a=100), {"a": 109}) == 1.0
    assert _metric("regex", pattern=r"^\d{3}-\d{4}$")(_ex(), {"a": "555-1234"}) == 1.0
    assert _metric("regex", pattern=r"\d+", full=True)(_ex(), {"a": "no 12"}) == 0.0


def test_graded_metric_is_strict_with_a_trace() -> None:
    f1 = _metric("f1")
    ex, pred = _ex(a="red green"), {"a": "green"}
    assert 0 < f1(ex, pred) < 1
    assert f1(ex, pred, TRACE) == 0.0
    assert f1(ex, {"a": "green red"}, TRACE) == 1.0
    lenient = _metric("f1", threshold=0.5)
    assert lenient(ex, pred, TRACE) == 1.0 and lenient.graded(ex, pred) == pytest.approx(2 / 3)


def test_missing_output_scores_zero_missing_label_is_an_error() -> None:
    m = _metric("exact_match")
    assert m(_ex(a="x"), {"other": 1}) == 0.0
    assert "missing" in m.feedback(_ex(a="x"), {"other": 1})
    with pytest.raises(MetricError, match="d.jsonl:4: no label 'a'"):
        m(_ex(b="x"), {"a": "x"})


def test_feedback_names_expected_and_got() -> None:
    text = _metric("exact_match").feedback(_ex(a="high"), {"a": "low"})
    assert "'high'" in text and "'low'" in text


def test_weighted_normalizes_weights() -> None:
    program = ProgramIR(metrics={
        "em": MetricIR(name="em", kind="exact_match", field="a"),
        "has": MetricIR(name="has", kind="contains", field="b", options={"value": "ok"}),
    })
    w = build_metric(MetricIR(name="w", kind="weighted", parts=[(3.0, "em"), (1.0, "has")]),
                     program)
    assert w(_ex(a="x"), {"a": "x", "b": "not"}) == pytest.approx(0.75)
    assert w(_ex(a="x"), {"a": "y", "b": "ok"}) == pytest.approx(0.25)
    assert w(_ex(a="x"), {"a": "y", "b": "ok"}, TRACE) == 0.0
    with pytest.raises(MetricError, match="unknown part"):
        build_metric(MetricIR(name="w", kind="weighted", parts=[(1.0, "nope")]), program)


def test_python_metric_from_the_programs_folder(tmp_path: Path) -> None:
    (tmp_path / "mymetrics.py").write_text(
        "def score(example, prediction, trace=None):\n"
        "    return (len(prediction.outputs['a']) / 10, 'length counts')\n"
    )
    program = ProgramIR(base_dir=str(tmp_path))
    ir = MetricIR(name="p", kind="python", import_path="mymetrics:score")
    m = build_metric(ir, program)
    assert m(_ex(), {"a": "abcde"}) == 0.5 and m.feedback(_ex(), {"a": "x"}) == "length counts"
    with pytest.raises(MetricError, match="runs Python code; allow it with --allow-tools"):
        build_metric(ir, program, allow_python=False)
    with pytest.raises(MetricError, match="cannot import"):
        build_metric(ir.model_copy(update={"import_path": "nothere_xyz:f"}), program)


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(MetricError, match="bad regex"):
        _metric("regex", pattern="(")
    with pytest.raises(MetricError, match="needs a field"):
        build_metric(MetricIR(name="m", kind="f1"), None)
    with pytest.raises(MetricError, match="unknown judge signature"):
        build_metric(MetricIR(name="j", kind="judge", signature="Nope"), ProgramIR(), object())


# ---------------------------------------------------------------- feedback (issue 16)


def test_numeric_feedback_says_by_how_much_and_which_way() -> None:
    m = _metric("numeric", tolerance=0.5)
    fb = m.with_feedback(_ex(a=42), {"a": "about 45"})
    assert fb.score == 0.0
    assert fb.feedback == ("numeric: expected a = 42, got 45: off by 3 (too high); "
                           "allowed error 0.5")
    assert "too low" in m.feedback(_ex(a=10), {"a": 7.5})
    assert "not a number" in m.feedback(_ex(a=10), {"a": "ten"})
    assert m.feedback(_ex(a=10), {"a": "10.2"}).startswith("correct")


def test_exact_f1_and_contains_feedback_name_what_was_wanted() -> None:
    fb = _metric("exact_match").with_feedback(_ex(a="positive"), {"a": "negative"})
    assert (fb.score, fb.feedback) == (0.0, "exact_match 0.00: expected a = 'positive', "
                                            "got 'negative'")
    f1 = _metric("f1").feedback(_ex(a="red green car"), {"a": "green bus"})
    assert "missing words: car red" in f1 and "extra words: bus" in f1
    assert "to contain 'sorry'" in _metric("contains", value="sorry").feedback(_ex(), {"a": "no"})


def test_judge_feedback_is_its_rationale() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))
    from world import LM, World, run_context

    from lmpc.ir import FieldIR, SignatureIR, TypeRef

    def answer(request: object, text: str, name: str) -> str | None:
        return {"rationale": "the review is upbeat, so negative is wrong",
                "score": "0"}.get(name)

    s = TypeRef(kind="str")
    program = ProgramIR(lms={"m": LM}, signatures={"Grade": SignatureIR(
        name="Grade", inputs=[FieldIR(name="gold_a", type=s), FieldIR(name="a", type=s)],
        outputs=[FieldIR(name="rationale", type=s),
                 FieldIR(name="score", type=TypeRef(kind="int"))])})
    judge = build_metric(MetricIR(name="j", kind="judge", signature="Grade"), program,
                         run_context(World(answer=answer)))
    fb = judge.with_feedback(_ex(a="positive"), {"a": "negative"})
    assert fb.score == 0.0
    assert fb.feedback == ("judge Grade: score = 0; rationale: the review is upbeat, so "
                           "negative is wrong")


def test_python_metric_is_told_the_predictor_being_optimized(tmp_path: Path) -> None:
    (tmp_path / "fbmetric.py").write_text(
        "def score(gold, pred, trace=None, pred_name=None, pred_trace=None):\n"
        "    ok = pred.outputs['a'] == gold.labels['a']\n"
        "    steps = [s.predictor for s in pred_trace or []]\n"
        "    return {'score': float(ok), 'feedback': f'for {pred_name}: {steps} ' +\n"
        "            ('right' if ok else 'wrong')}\n"
        "def plain(gold, pred, trace=None):\n"
        "    return (0.25, 'no focus taken')\n"
    )
    program = ProgramIR(base_dir=str(tmp_path))
    m = build_metric(MetricIR(name="p", kind="python", import_path="fbmetric:score"), program)
    trace = [TraceStep(predictor="M.a", inputs={}, outputs={}),
             TraceStep(predictor="M.b", inputs={}, outputs={})]
    fb = m.with_feedback(_ex(a="x"), Prediction({"a": "y"}, trace), predictor="M.b")
    assert (fb.score, fb.feedback) == (0.0, "for M.b: ['M.b'] wrong")
    assert m(_ex(a="x"), {"a": "x"}) == 1.0  # evaluation calls it the DSPy way
    plain = build_metric(MetricIR(name="q", kind="python", import_path="fbmetric:plain"),
                         program)
    assert plain.with_feedback(_ex(), {"a": 1}, predictor="M.b").feedback == "no focus taken"
    weighted = build_metric(MetricIR(name="w", kind="weighted", parts=[(1.0, "p")]),
                            program.model_copy(update={"metrics": {"p": MetricIR(
                                name="p", kind="python", import_path="fbmetric:score")}}))
    assert "for M.a: ['M.a']" in weighted.with_feedback(
        _ex(a="x"), Prediction({"a": "x"}, trace), predictor="M.a").feedback
