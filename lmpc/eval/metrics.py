"""Metrics: turn a ``MetricIR`` into a callable ``metric(example, prediction, trace=None)``.

A metric returns a float in 0..1. Without a trace (evaluation) graded metrics keep their
grade; with a trace (bootstrapping, OPTIMIZERS.md) the metric is strict: 1.0 when the
grade reaches the metric's ``threshold`` option (1.0 by default), else 0.0. Every metric
also has ``graded(example, prediction)`` (the grade, ignoring traces) and
``with_feedback(example, prediction, predictor=..., trace=...)``: the grade plus a text
explanation for reflective optimizers (``gepa``, ``simba``). The built-ins explain
themselves (exact match names what was expected and what came back, ``numeric`` by how
much it missed, ``f1`` the missing and extra words, an LM judge gives its rationale); a
Python metric may return ``(score, feedback)``, a dict or an object with ``score`` and
``feedback``, and is told which predictor is being optimized when it takes DSPy's GEPA
arguments ``pred_name`` / ``pred_trace``.

>>> from lmpc.ir import MetricIR
>>> m = build_metric(MetricIR(name="acc", kind="exact_match", field="answer"), None)
>>> m(Example(inputs={}, labels={"answer": "The Paris."}), {"answer": "paris"})
1.0
>>> f1 = build_metric(MetricIR(name="f", kind="f1", field="a"), None)
>>> f1(Example(inputs={}, labels={"a": "red green"}), {"a": "green"})
0.6666666666666666
>>> num = build_metric(MetricIR(name="n", kind="numeric", field="x"), None)
>>> num.with_feedback(Example(inputs={}, labels={"x": 42}), {"x": "40"}).feedback
'numeric: expected x = 42, got 40: off by 2 (too low)'
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import string
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmpc.ir import Example, ExprIR, MetricIR, ModuleIR, PredictorIR, ProgramIR, StepIR

Grader = Callable[[Example, dict[str, Any]], tuple[float, str]]


@dataclass(frozen=True)
class Focus:
    """What a reflective optimizer is looking at when it asks for feedback: the
    predictor it is rewriting (None: the whole program) and the run's trace."""

    predictor: str | None = None
    trace: list[Any] | None = None

    def steps(self) -> list[Any]:
        """The trace steps of the focused predictor (all steps when there is none)."""
        steps = list(self.trace or [])
        if self.predictor is None:
            return steps
        return [s for s in steps if getattr(s, "predictor", None) == self.predictor]


@dataclass(frozen=True)
class Feedback:
    """A graded score in 0..1 and why (``dspy.Prediction(score=..., feedback=...)``)."""

    score: float
    feedback: str


class MetricError(Exception):
    """A metric that cannot be built or applied (a configuration error, not an LM failure)."""


@dataclass
class Metric:
    """A scoring function over (example, prediction[, trace]) with a 0..1 result."""

    name: str
    grader: Grader
    threshold: float = 1.0
    kind: str = ""
    uses_lm: bool = False
    parts: list[Metric] = field(default_factory=list)
    # a grader that can be told the focus (Python metrics taking pred_name/pred_trace)
    focused: Callable[[Example, dict[str, Any], Focus], tuple[float, str]] | None = None

    def __call__(self, example: Example, prediction: Any, trace: Any = None) -> float:
        score = self.graded(example, prediction)
        if trace is not None:
            return 1.0 if score >= self.threshold - 1e-9 else 0.0
        return score

    def graded(self, example: Example, prediction: Any) -> float:
        """The grade in 0..1, never thresholded."""
        return self.grader(example, outputs_of(prediction))[0]

    def feedback(self, example: Example, prediction: Any) -> str:
        """Why the prediction scored what it did, for reflective optimizers."""
        return self.with_feedback(example, prediction).feedback

    def with_feedback(self, example: Example, prediction: Any, *,
                      predictor: str | None = None, trace: Any = None) -> Feedback:
        """The graded score and its explanation; ``predictor`` is the one being optimized
        (a Python metric taking ``pred_name`` sees it), ``trace`` the run's steps
        (default: the prediction's own)."""
        outputs = outputs_of(prediction)
        if self.focused is not None:
            if trace is None:
                trace = getattr(prediction, "trace", None)
            score, text = self.focused(example, outputs, Focus(predictor, trace))
        else:
            score, text = self.grader(example, outputs)
        return Feedback(float(score), text)


def outputs_of(prediction: Any) -> dict[str, Any]:
    """The output dict of a ``Prediction``, a dict, or anything with ``.outputs``."""
    if isinstance(prediction, dict):
        return prediction
    outputs = getattr(prediction, "outputs", None)
    if isinstance(outputs, dict):
        return outputs
    raise MetricError(f"cannot score a {type(prediction).__name__}: expected a prediction")


def build_metric(
    metric_ir: MetricIR,
    program: ProgramIR | None,
    run_ctx_for_judge: Any = None,
    *,
    allow_python: bool | None = None,
    _seen: tuple[str, ...] = (),
) -> Metric:
    """Build the metric ``metric_ir`` describes (``program`` resolves names it refers to).

    A Python metric imports code: ``allow_python`` says whether it may; None asks the
    trust of ``run_ctx_for_judge`` (and allows it when there is no context)."""
    kind = metric_ir.kind
    threshold = float(metric_ir.options.get("threshold", 1.0))
    if kind in FIELD_METRICS:
        grader = _field_grader(metric_ir, FIELD_METRICS[kind])
        return Metric(metric_ir.name, grader, threshold, kind)
    if kind == "judge":
        grader = _judge_grader(metric_ir, _need(program, metric_ir), run_ctx_for_judge)
        return Metric(metric_ir.name, grader, threshold, kind, uses_lm=True)
    if kind == "weighted":
        return _weighted(metric_ir, _need(program, metric_ir), run_ctx_for_judge, allow_python,
                         _seen + (metric_ir.name,))
    if kind == "python":
        trust = getattr(run_ctx_for_judge, "trust", None)
        path = metric_ir.import_path or ""
        if allow_python is None:
            allow_python = trust is None or trust.code_allowed(metric_ir.name, path)
        if not allow_python:
            raise MetricError(
                f"metric {metric_ir.name!r} ({path}) runs Python code; allow it with "
                f"--allow-tools (or --allow-tool {metric_ir.name}, LMPC_ALLOW_TOOLS)"
            )
        base_dir = program.base_dir if program else "."
        grader, focused = _python_grader(metric_ir, base_dir)
        return Metric(metric_ir.name, grader, threshold, kind, focused=focused)
    raise MetricError(f"metric {metric_ir.name!r}: unknown kind {kind!r}")


def _need(program: ProgramIR | None, metric_ir: MetricIR) -> ProgramIR:
    if program is None:
        raise MetricError(f"metric {metric_ir.name!r} ({metric_ir.kind}) needs the program")
    return program


# ---------------------------------------------------------------- field metrics


def normalize_text(value: Any) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD-style).

    >>> normalize_text("  The  Quick, brown fox! ")
    'quick brown fox'
    """
    text = str(value).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _text(value: Any) -> str:
    """Field values as text for comparison: lists join, bools and None spell out."""
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _exact(output: Any, label: Any, options: dict[str, Any]) -> float:
    if isinstance(output, list) and isinstance(label, list):
        same = len(output) == len(label) and all(
            _exact(o, g, options) for o, g in zip(output, label, strict=True)
        )
        return float(same)
    if isinstance(label, list):  # several acceptable answers
        return max((_exact(output, g, options) for g in label), default=0.0)
    if options.get("normalize", True):
        return float(normalize_text(_text(output)) == normalize_text(_text(label)))
    return float(_text(output).strip() == _text(label).strip())


def token_f1(output: Any, label: Any) -> float:
    """Token-level F1 of normalized texts."""
    pred_tokens = normalize_text(_text(output)).split()
    gold_tokens = normalize_text(_text(label)).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _f1(output: Any, label: Any, options: dict[str, Any]) -> float:
    if isinstance(label, list) and not isinstance(output, list):
        return max((token_f1(output, g) for g in label), default=0.0)
    return token_f1(output, label)


def _contains(output: Any, label: Any, options: dict[str, Any]) -> float:
    needle = options.get("value", label)
    if isinstance(output, list) and not isinstance(needle, list):
        return float(any(normalize_text(_text(o)) == normalize_text(_text(needle)) for o in output))
    return float(normalize_text(_text(needle)) in normalize_text(_text(output)))


_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(value: Any) -> float | None:
    """The value as a number, or the first number written in its text."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    match = _NUMBER.search(_text(value))
    return float(match.group().replace(",", "")) if match else None


def _numeric(output: Any, label: Any, options: dict[str, Any]) -> float:
    got, want = parse_number(output), parse_number(label)
    if got is None or want is None or math.isnan(got):
        return 0.0
    tolerance = float(options.get("tolerance", 0.0))
    if options.get("relative"):
        tolerance *= abs(want)
    return float(abs(got - want) <= tolerance + 1e-12)


def _regex(output: Any, label: Any, options: dict[str, Any]) -> float:
    pattern = options.get("pattern")
    flags = re.IGNORECASE if options.get("ignore_case") else 0
    matcher = re.fullmatch if options.get("full") else re.search
    return float(matcher(str(pattern), _text(output), flags) is not None)


FIELD_METRICS: dict[str, Callable[[Any, Any, dict[str, Any]], float]] = {
    "exact_match": _exact,
    "f1": _f1,
    "contains": _contains,
    "numeric": _numeric,
    "regex": _regex,
}
NEEDS_LABEL = {"exact_match", "f1", "numeric"}


def _field_grader(metric_ir: MetricIR, compare: Callable[..., float]) -> Grader:
    name, kind, options = metric_ir.field, metric_ir.kind, dict(metric_ir.options)
    if not name:
        raise MetricError(f"metric {metric_ir.name!r} ({kind}) needs a field")
    if kind == "regex":
        try:
            re.compile(str(options.get("pattern")))
        except re.error as exc:
            raise MetricError(f"metric {metric_ir.name!r}: bad regex pattern: {exc}") from exc
    needs_label = kind in NEEDS_LABEL or (kind == "contains" and "value" not in options)

    def grade(example: Example, outputs: dict[str, Any]) -> tuple[float, str]:
        label = example.values.get(name)
        if needs_label and name not in example.values:
            raise MetricError(
                f"{example.source or 'example'}: no label {name!r} for metric {metric_ir.name!r}"
            )
        if name not in outputs:
            return 0.0, f"the output {name!r} is missing"
        score = compare(outputs[name], label, options)
        return score, _field_feedback(kind, name, outputs[name], label, options, score)

    return grade


def _field_feedback(
    kind: str, name: str, got: Any, label: Any, options: dict[str, Any], score: float
) -> str:
    if kind == "regex":
        verdict = "matches" if score else "does not match"
        return f"{name} = {got!r} {verdict} /{options.get('pattern')}/"
    if kind == "numeric":
        return _numeric_feedback(name, got, label, options, score)
    if score >= 1.0:
        return f"correct: {name} = {got!r}"
    if kind == "contains":
        needle = options.get("value", label)
        return f"contains: expected {name} to contain {needle!r}, got {got!r}"
    text = f"{kind} {score:.2f}: expected {name} = {label!r}, got {got!r}"
    if kind == "f1":
        want = set(normalize_text(_text(label)).split())
        have = set(normalize_text(_text(got)).split())
        if want - have:
            text += "; missing words: " + " ".join(sorted(want - have))
        if have - want:
            text += "; extra words: " + " ".join(sorted(have - want))
    return text


def _numeric_feedback(name: str, got: Any, label: Any, options: dict[str, Any],
                      score: float) -> str:
    """By how much a number missed, and in which direction."""
    have, want = parse_number(got), parse_number(label)
    if have is None or want is None or math.isnan(have):
        return f"numeric: expected {name} = {label!r}, got {got!r}, which is not a number"
    if score >= 1.0:
        return f"correct: {name} = {_num(have)} (expected {_num(want)})"
    off = have - want
    text = (f"numeric: expected {name} = {_num(want)}, got {_num(have)}: off by "
            f"{_num(abs(off))} ({'too high' if off > 0 else 'too low'})")
    tolerance = float(options.get("tolerance", 0.0))
    if tolerance:
        allowed = tolerance * abs(want) if options.get("relative") else tolerance
        text += f"; allowed error {_num(allowed)}"
    return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ---------------------------------------------------------------- combinations


def _weighted(
    metric_ir: MetricIR,
    program: ProgramIR,
    run_ctx: Any,
    allow_python: bool | None,
    seen: tuple[str, ...],
) -> Metric:
    """Weighted combination; weights are normalized so the result stays in 0..1."""
    if not metric_ir.parts:
        raise MetricError(f"metric {metric_ir.name!r} (weighted) has no parts")
    parts: list[tuple[float, Metric]] = []
    for weight, part_name in metric_ir.parts:
        if part_name in seen:
            raise MetricError(f"metric {metric_ir.name!r} refers to itself through {part_name!r}")
        part_ir = program.metrics.get(part_name)
        if part_ir is None:
            raise MetricError(f"metric {metric_ir.name!r}: unknown part {part_name!r}")
        part = build_metric(part_ir, program, run_ctx, allow_python=allow_python, _seen=seen)
        parts.append((float(weight), part))
    total = sum(weight for weight, _ in parts) or 1.0

    def focused(example: Example, outputs: dict[str, Any], focus: Focus) -> tuple[float, str]:
        graded = [(w, m, m.with_feedback(example, outputs, predictor=focus.predictor,
                                         trace=focus.trace)) for w, m in parts]
        score = sum(w * result.score for w, _, result in graded) / total
        notes = "; ".join(f"{m.name} ({w:g}): {result.feedback}" for w, m, result in graded)
        return min(1.0, max(0.0, score)), notes

    def grade(example: Example, outputs: dict[str, Any]) -> tuple[float, str]:
        return focused(example, outputs, Focus())

    threshold = float(metric_ir.options.get("threshold", 1.0))
    uses_lm = any(m.uses_lm for _, m in parts)
    return Metric(metric_ir.name, grade, threshold, "weighted", uses_lm, [m for _, m in parts],
                  focused=focused)


# ---------------------------------------------------------------- python callables


def _python_grader(metric_ir: MetricIR, base_dir: str) -> tuple[Grader, Any]:
    """The grader, and one told the focus when ``fn`` takes ``pred_name``/``pred_trace``
    (DSPy's GEPA metric ``metric(gold, pred, trace, pred_name, pred_trace)``)."""
    fn = load_callable(metric_ir.import_path or "", base_dir, what=f"metric {metric_ir.name!r}")
    what = f"metric {metric_ir.name!r}"

    def grade(example: Example, outputs: dict[str, Any]) -> tuple[float, str]:
        from lmpc.runtime.execute_types import Prediction

        return coerce_score(fn(example, Prediction(outputs=outputs), None), what)

    takes = _focus_params(fn)
    if not takes:
        return grade, None

    def focused(example: Example, outputs: dict[str, Any], focus: Focus) -> tuple[float, str]:
        from lmpc.runtime.execute_types import Prediction

        trace = list(focus.trace or [])
        extra = {"pred_name": focus.predictor, "pred_trace": focus.steps()}
        result = fn(example, Prediction(outputs=outputs, trace=trace), None,
                    **{k: v for k, v in extra.items() if k in takes})
        return coerce_score(result, what)

    return grade, focused


def _focus_params(fn: Callable[..., Any]) -> set[str]:
    """Which of ``pred_name``/``pred_trace`` ``fn`` accepts (both with ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {"pred_name", "pred_trace"}
    return {p.name for p in params} & {"pred_name", "pred_trace"}


def load_callable(import_path: str, base_dir: str, what: str) -> Callable[..., Any]:
    """Import ``"pkg.mod:fn"``, looking first beside the program (``base_dir``)."""
    module_name, _, attr = import_path.partition(":")
    if not module_name or not attr:
        raise MetricError(f"{what}: import path {import_path!r} must look like 'pkg.mod:fn'")
    file = Path(base_dir, *module_name.split(".")).with_suffix(".py")
    try:
        if file.is_file():
            module = _import_file(module_name, file)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # user code: any import failure becomes one clear line
        raise MetricError(f"{what}: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise MetricError(f"{what}: {module_name!r} has no callable {attr!r}")
    return fn


def _import_file(module_name: str, file: Path) -> Any:
    key = f"lmpc_user.{module_name}.{abs(hash(str(file.resolve())))}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def coerce_score(result: Any, what: str) -> tuple[float, str]:
    """A metric result (bool, number, (score, feedback), dict or object) as (0..1, text)."""
    feedback = ""
    if isinstance(result, tuple) and len(result) == 2:
        result, feedback = result
    elif isinstance(result, dict):
        result, feedback = result.get("score"), result.get("feedback", "")
    elif hasattr(result, "score"):
        result, feedback = result.score, getattr(result, "feedback", "")
    if isinstance(result, bool):
        return float(result), str(feedback or "")
    if isinstance(result, int | float) and not math.isnan(result):
        return min(1.0, max(0.0, float(result))), str(feedback or "")
    raise MetricError(f"{what} returned {result!r}; expected a number or bool")


# ---------------------------------------------------------------- LM judge

JUDGE_MODULE = "__judge__"


def _judge_grader(metric_ir: MetricIR, program: ProgramIR, run_ctx: Any) -> Grader:
    signature = program.signatures.get(metric_ir.signature or "")
    if signature is None:
        raise MetricError(f"metric {metric_ir.name!r}: unknown judge signature "
                          f"{metric_ir.signature!r}")
    if run_ctx is None:
        raise MetricError(f"metric {metric_ir.name!r} (judge) needs an LM to run the judge")
    if metric_ir.lm and metric_ir.lm not in program.lms:
        raise MetricError(f"metric {metric_ir.name!r}: unknown LM {metric_ir.lm!r}")
    scored = [f for f in signature.outputs if f.type.kind in ("int", "float", "bool")]
    if not scored:
        raise MetricError(f"judge signature {signature.name!r} needs a numeric or bool output")
    judge_program = judge_program_for(program, signature.name, metric_ir.lm)
    score_field = scored[0].name
    text_fields = [f.name for f in signature.outputs if f.type.kind == "str"]
    scale = float(metric_ir.options.get("scale", 1.0)) or 1.0

    def grade(example: Example, outputs: dict[str, Any]) -> tuple[float, str]:
        from lmpc.runtime.execute import run_module

        inputs = judge_inputs([f.name for f in signature.inputs], example, outputs)
        judged = run_module(judge_program, JUDGE_MODULE, inputs, run_ctx).outputs
        value = parse_number(judged.get(score_field))
        score = 0.0 if value is None else min(1.0, max(0.0, value / scale))
        notes = " ".join(str(judged[name]) for name in text_fields if judged.get(name))
        verdict = f"judge {signature.name}: {score_field} = {judged.get(score_field)!r}"
        return score, f"{verdict}; rationale: {notes}" if notes else verdict

    return grade


def judge_program_for(program: ProgramIR, signature: str, lm: str | None) -> ProgramIR:
    """The program plus a one-step module that runs ``signature`` as a plain predictor."""
    sig = program.signatures[signature]
    predictor = PredictorIR(id=f"{JUDGE_MODULE}.judge", signature=sig, lm=lm)
    module = ModuleIR(
        name=JUDGE_MODULE,
        inputs=list(sig.inputs),
        outputs=list(sig.outputs),
        steps=[StepIR(name="judge", kind="predictor", predictor=predictor.id,
                      args={f.name: ExprIR(kind="ref", path=[f.name]) for f in sig.inputs})],
        returns={f.name: ExprIR(kind="ref", path=["judge", f.name]) for f in sig.outputs},
    )
    return program.model_copy(update={
        "modules": {**program.modules, JUDGE_MODULE: module},
        "predictors": {**program.predictors, predictor.id: predictor},
    })


def judge_inputs(names: list[str], example: Example, outputs: dict[str, Any]) -> dict[str, Any]:
    """Fill the judge's inputs by name.

    ``gold_X``/``expected_X`` take label X; ``pred_X``/``predicted_X`` take output X; a
    plain name takes the program's output, else the example's value of that name.
    """
    values: dict[str, Any] = {}
    for name in names:
        prefix, _, rest = name.partition("_")
        if prefix in ("gold", "expected") and rest in example.values:
            values[name] = example.values[rest]
        elif prefix in ("pred", "predicted") and rest in outputs:
            values[name] = outputs[rest]
        elif name in outputs:
            values[name] = outputs[name]
        elif name in example.values:
            values[name] = example.values[name]
        else:
            raise MetricError(
                f"{example.source or 'example'}: judge input {name!r} is neither an output "
                "of the program nor a field of the example"
            )
    return values


def reward_fns_for(
    program: ProgramIR, run_ctx: Any, *, allow_python: bool | None = None
) -> dict[str, Callable[[dict[str, Any], dict[str, Any]], float]]:
    """Reward functions for best_of_n/refine steps, by metric name.

    A reward sees only a run's inputs and outputs (there is no label at run time), so
    it suits label-free metrics: regex, contains with a value, judges, Python.
    """
    names = {p.options["reward"] for p in program.predictors.values()
             if isinstance(p.options.get("reward"), str)}
    rewards = {}
    for name in sorted(names & set(program.metrics)):
        metric = build_metric(program.metrics[name], program, run_ctx, allow_python=allow_python)
        rewards[name] = _as_reward(metric)
    return rewards


def _as_reward(metric: Metric) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    def reward(inputs: dict[str, Any], outputs: dict[str, Any]) -> float:
        return metric.graded(Example(inputs=dict(inputs), labels={}), outputs)

    return reward
