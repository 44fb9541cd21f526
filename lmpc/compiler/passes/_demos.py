"""Helpers the few-shot passes share: examples → demos, traces → demos, seeded sampling.

A *labeled* demo comes straight from a dataset row; a *bootstrapped* demo is one step of a
successful teacher trace (inputs plus every output, ``reasoning`` included).

>>> from lmpc.ir import FieldIR, PredictorIR, SignatureIR, TypeRef
>>> s = TypeRef(kind="str")
>>> p = PredictorIR(id="QA.a", signature=SignatureIR(name="S",
...     inputs=[FieldIR(name="q", type=s)], outputs=[FieldIR(name="a", type=s)]))
>>> labeled_demo(p, Example(inputs={"q": "2+2?", "id": 7}, labels={"a": "4"})).values
{'q': '2+2?', 'a': '4'}
>>> [e.index for e in seeded_sample(
...     [Example({}, {}, index=i) for i in range(10)], 3, rng_for(0, "doc"))]
[4, 0, 6]

Stratified order: every class before any repeats, the given order kept within a class.

>>> rows = [Example({}, {"y": y}, index=i) for i, y in enumerate("aaaab")]
>>> [e.labels["y"] for e in stratified(rows, "y")]
['a', 'b', 'a', 'a', 'a']
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from lmpc.compiler.passes.base import BudgetExceeded
from lmpc.ir import Demo, Example, ModuleIR, PredictorIR, ProgramIR


class PassError(Exception):
    """A pass cannot go on (bad parameter for this program, too many failures, ...).

    The message says what went wrong and what to change; the driver reports it as a
    build error, never as a traceback.
    """


def rng_for(seed: int, tag: str | int) -> random.Random:
    """A private, reproducible random stream for one purpose of one pass.

    Seeding from a string is stable across processes (unlike ``hash()``), and keeping
    one stream per purpose means adding a draw in one place never shifts another.
    """
    return random.Random(f"lmpc:{seed}:{tag}")


def seeded_sample(items: list[Any], k: int, rng: random.Random) -> list[Any]:
    """``k`` items drawn without replacement (all of them, reordered, if fewer)."""
    return rng.sample(items, min(k, len(items)))


#: A field whose labels take at most this many values (each seen at least twice) is
#: treated as a label set even when its type is not an enum.
MAX_CLASSES = 16


def class_field(program: ProgramIR, module: str, field: str | None,
                examples: list[Example]) -> str | None:
    """The label field demos are balanced over, or None when there is none to balance.

    ``field`` is the one the metric reads. It qualifies when the module declares it as
    an enum, a literal union or a bool, or when its values in ``examples`` form a small
    label set (at most ``MAX_CLASSES`` values, on average each used at least twice).
    """
    if not field or module not in program.modules:
        return None
    declared = {f.name: f.type for f in program.modules[module].outputs}
    kind = declared[field].kind if field in declared else None
    if kind in ("enum", "literal", "bool"):
        return field
    values = [_hashable(ex.labels.get(field)) for ex in examples if field in ex.labels]
    distinct = set(values)
    if values and 1 < len(distinct) <= MAX_CLASSES and 2 * len(distinct) <= len(values):
        return field
    return None


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def class_of(example: Example, field: str | None) -> Any:
    """The example's class under ``field`` (one shared class when there is no field)."""
    return _hashable(example.labels.get(field)) if field else None


def stratified(examples: list[Example], field: str | None,
               counts: Counter[Any] | None = None) -> list[Example]:
    """``examples`` reordered so each next one is of the class with the fewest so far.

    ``counts`` are classes already taken (e.g. by bootstrapped demos); ties go to the
    class seen first. Within a class the given order is kept, so a seeded shuffle before
    this keeps the result seeded. Without a ``field`` the order is unchanged.
    """
    if not field:
        return list(examples)
    queue = ClassQueue(examples, lambda ex: class_of(ex, field), counts)
    out: list[Example] = []
    while (nxt := queue.next()) is not None:
        out.append(nxt)
        queue.taken(nxt)
    return out


def balanced(examples: list[Example], field: str | None, k: int,
             counts: Counter[Any] | None = None) -> list[Example]:
    """The ``k`` examples a stratified order starts with, in their given order, then the
    rest (in case some cannot become demos).

    The choice covers every class before repeating one; the order stays the given
    (seeded) one, because a round-robin order — billing, account, shipping, technical,
    billing, ... — is a pattern a small model continues: on the classify example Gemma
    270M answered the class after the last demo's for most tickets (42.5% test with
    round-robin demos, against 61% for a plain sample). Without a ``field``: unchanged.

    >>> rows = [Example({}, {"y": y}, index=i) for i, y in enumerate("aaabab")]
    >>> [(e.index, e.labels["y"]) for e in balanced(rows, "y", 3)]
    [(0, 'a'), (1, 'a'), (3, 'b'), (5, 'b'), (2, 'a'), (4, 'a')]
    """
    if not field:
        return list(examples)
    order = stratified(examples, field, counts)
    chosen = {id(ex) for ex in order[:k]}
    return [ex for ex in examples if id(ex) in chosen] + order[k:]


class ClassQueue:
    """Items served class by class: next comes the class with the fewest taken.

    Bootstrapping takes an example only when the teacher succeeds on it, so a class the
    teacher keeps failing on is tried again (its next example) before another class gets
    a second demo — until that class runs out of examples. Ties between classes go to
    the fewest tried, then to the class seen first. Within a class, the given order.
    """

    def __init__(self, items: Iterable[Any], key: Callable[[Any], Any],
                 counts: Counter[Any] | None = None) -> None:
        self._key = key
        self._pending: dict[Any, list[Any]] = {}
        for item in items:
            self._pending.setdefault(key(item), []).append(item)
        self._order = {c: i for i, c in enumerate(self._pending)}
        self.counts: Counter[Any] = Counter(counts or {})
        self._tried: Counter[Any] = Counter()

    def next(self) -> Any | None:
        """The next item to try, or None when every class is used up."""
        left = [c for c, rows in self._pending.items() if rows]
        if not left:
            return None
        cls = min(left, key=lambda c: (self.counts[c], self._tried[c], self._order[c]))
        self._tried[cls] += 1
        return self._pending[cls].pop(0)

    def taken(self, item: Any) -> None:
        """Count ``item``'s class as having one more demo."""
        self.counts[self._key(item)] += 1


def class_counts(examples: Iterable[Example], field: str | None) -> dict[str, int]:
    """How many of ``examples`` are of each class (for reports), by class name."""
    if not field:
        return {}
    counts = Counter(str(class_of(ex, field)) for ex in examples)
    return dict(sorted(counts.items()))


def clear_demos(program: ProgramIR, module: str) -> ProgramIR:
    """A deep copy of ``program`` whose predictors reachable from ``module`` have no demos."""
    out = program.model_copy(deep=True)
    for pred in out.predictors_of(module):
        pred.demos = []
    return out


def field_aliases(program: ProgramIR, module: str, pred: PredictorIR) -> dict[str, str]:
    """Signature field of ``pred`` → the dataset field that holds its value.

    Besides a field of the same name, an input bound straight to a module input
    (``Triage(text = ticket)``) reads ``ticket``, and an output the module returns under
    another name (``return (label = t.priority)``) reads ``label``.
    """
    aliases: dict[str, str] = {}
    mod: ModuleIR = program.modules[module]
    module_inputs = {f.name for f in mod.inputs}
    for step in mod.steps:
        if step.kind != "predictor" or step.predictor != pred.id:
            continue
        for arg, expr in step.args.items():
            if expr.kind == "ref" and len(expr.path) == 1 and expr.path[0] in module_inputs:
                aliases.setdefault(arg, expr.path[0])
        for ret, expr in mod.returns.items():
            if expr.kind == "ref" and len(expr.path) == 2 and expr.path[0] == step.name:
                aliases.setdefault(expr.path[1], ret)
    return aliases


def hidden_values(program: ProgramIR, module: str, example: Example) -> dict[str, Any]:
    """The values that identify ``example`` in any demo of ``module``'s predictors.

    The runtime hides a demo whose inputs equal these; besides the dataset's own field
    names this adds each predictor's name for a field bound to a module input, so a
    demo of ``Answer(question = q)`` is recognised by its ``question``.
    """
    values = dict(example.inputs)
    for pred in program.predictors_of(module):
        for name, source in field_aliases(program, module, pred).items():
            if source in example.inputs and any(f.name == name for f in pred.signature.inputs):
                values.setdefault(name, example.inputs[source])
    return values


def labeled_demo(
    pred: PredictorIR, example: Example, aliases: dict[str, str] | None = None
) -> Demo | None:
    """The fields of ``example`` that ``pred``'s signature has, as a labeled demo.

    None when the row lacks all of the predictor's inputs or all of its outputs: such a
    demo teaches nothing (typical for an intermediate step the data has no label for),
    and adapters would skip it anyway.
    """
    row = example.values
    aliases = aliases or {}
    values: dict[str, Any] = {}
    for f in [*pred.signature.inputs, *pred.signature.outputs]:
        for key in (f.name, aliases.get(f.name)):
            if key is not None and key in row:
                values[f.name] = row[key]
                break
    has_input = any(f.name in values for f in pred.signature.inputs)
    if not has_input or not any(f.name in values for f in pred.signature.outputs):
        return None
    return Demo(values=values, kind="labeled")


def labeled_demos(
    program: ProgramIR, module: str, pred: PredictorIR, examples: Iterable[Example], k: int
) -> list[Demo]:
    """Up to ``k`` labeled demos of ``pred`` from ``examples``, in the order given."""
    aliases = field_aliases(program, module, pred)
    out: list[Demo] = []
    for ex in examples:
        if len(out) >= k:
            break
        demo = labeled_demo(pred, ex, aliases)
        if demo is not None:
            out.append(demo)
    return out


def trace_demos(
    trace: Iterable[Any], rename: dict[str, str] | None = None
) -> dict[str, list[Demo]]:
    """Each step of a successful trace as a bootstrapped demo, by predictor id.

    ``rename`` maps a teacher's predictor ids to the student's (when the teacher is
    another module with the same shape).
    """
    out: dict[str, list[Demo]] = {}
    rename = rename or {}
    for step in trace:
        pid = rename.get(step.predictor, step.predictor)
        out.setdefault(pid, []).append(
            Demo(values={**step.inputs, **step.outputs}, kind="bootstrapped")
        )
    return out


def demo_classes(program: ProgramIR, module: str, field: str | None
                 ) -> dict[str, dict[str, int]]:
    """Per predictor that shows the class field in its demos: demos per class."""
    if not field:
        return {}
    out: dict[str, dict[str, int]] = {}
    for pred in program.predictors_of(module):
        aliases = field_aliases(program, module, pred)
        own = next((f.name for f in pred.signature.outputs
                    if f.name == field or aliases.get(f.name) == field), None)
        if own is None:
            continue
        counts = Counter(str(_hashable(d.values.get(own))) for d in pred.demos
                         if own in d.values)
        out[pred.id] = dict(sorted(counts.items()))
    return out


def demo_counts(program: ProgramIR, module: str) -> dict[str, dict[str, int]]:
    """Per predictor: how many labeled and bootstrapped demos it has (for reports)."""
    counts: dict[str, dict[str, int]] = {}
    for pred in program.predictors_of(module):
        c = {"labeled": 0, "bootstrapped": 0}
        for d in pred.demos:
            c[d.kind] += 1
        counts[pred.id] = c
    return counts


def check_budget(budget: Any) -> None:
    """Ask the build's budget tracker (if any) whether another LM-heavy step may start."""
    if budget is not None:
        budget.check()


def reraise_if_over_budget(budget: Any) -> None:
    """Raise ``BudgetExceeded`` if the cap was hit during the last step.

    A run that hits the cap mid-way fails like any other example (the runtime and
    ``evaluate`` count it as a failure), so its result must not be taken at face value.
    """
    reason = getattr(budget, "exceeded", None) if budget is not None else None
    if reason:
        raise BudgetExceeded(reason)


def attributed(run_ctx: Any, **fields: Any) -> Any:
    """``run_ctx`` with ``fields`` added to the attribution of every LM call it makes."""
    return run_ctx.derive(attribution={**(run_ctx.attribution or {}), **fields})
