"""The IR: the one currency of lmpc.

Semantic analysis produces a :class:`ProgramIR`; optimizer passes take one and return
a new one; the runtime executes one; the artifact is one serialized, plus provenance.
Every model here is plain pydantic data, so an IR round-trips through JSON with no
Python class of the user's and no pickle:

>>> sig = SignatureIR(name="QA", inputs=[FieldIR(name="q", type=TypeRef(kind="str"))],
...                   outputs=[FieldIR(name="a", type=TypeRef(kind="int"))])
>>> SignatureIR.model_validate_json(sig.model_dump_json()) == sig
True

Conventions
- Names of LMs, signatures, modules, datasets, metrics are the user's names.
- A predictor's id is ``"<Module>.<step>"``; ``ProgramIR.predictors`` holds every one,
  and optimizers change predictors only through that map (instructions, demos, lm).
- Secrets never appear: an ``env.NAME`` setting is kept as ``{"env": "NAME"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    """Base of all IR nodes: strict about unknown keys, comparable by value."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class Span(Node):
    """Where a construct came from in the user's source (1-based line and column)."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------- types

TypeKind = Literal[
    "str", "int", "float", "bool", "any", "list", "dict", "tuple", "optional", "union",
    "enum", "class", "literal"
]


class TypeRef(Node):
    """A type expression, in one canonical form whatever the spelling (``Optional[int]``,
    ``int | None`` and ``int?`` are the same TypeRef).

    - scalars: ``kind`` in str/int/float/bool/any
    - ``list[T]``: kind="list", args=[T]; ``dict[K, V]``: kind="dict", args=[K, V]
    - ``tuple[A, B]``: kind="tuple", args=[A, B] (fixed length; ``tuple[T, ...]`` is a list)
    - ``T?``: kind="optional", args=[T]
    - ``A | B``: kind="union", args=[A, B] (two or more, flattened, none optional: a
      ``None`` member makes the whole union optional, ``(A | B)?``)
    - enums and classes by name: kind="enum"/"class", name="Priority"
    - literals: kind="literal", values=["yes", "no"] (str/int/float/bool values)

    >>> t = TypeRef(kind="optional", args=[TypeRef(kind="union", args=[
    ...     TypeRef(kind="int"), TypeRef(kind="tuple", args=[TypeRef(kind="str")] * 2)])])
    >>> str(t)
    '(int | tuple[str, str])?'
    """

    kind: TypeKind
    args: list[TypeRef] = Field(default_factory=list)
    name: str | None = None
    values: list[str | int | float | bool] = Field(default_factory=list)

    def __str__(self) -> str:
        if self.kind in ("list", "dict", "tuple"):
            return f"{self.kind}[{', '.join(str(a) for a in self.args)}]"
        if self.kind == "optional":
            inner = self.args[0]
            several = inner.kind == "union" or (inner.kind == "literal" and
                                                len(inner.values) > 1)
            return f"({inner})?" if several else f"{inner}?"
        if self.kind == "union":
            return " | ".join(str(a) for a in self.args)
        if self.kind in ("enum", "class"):
            return str(self.name)
        if self.kind == "literal":
            return " | ".join(repr(v) if isinstance(v, str) else str(v) for v in self.values)
        return self.kind


class FieldIR(Node):
    """A named, typed, optionally described field (signature, class, module or tool).

    ``default`` is the declared default of a module input or tool parameter
    (``k: int = 3``); None means no default (a parameter defaulting to ``none`` is
    typed ``T?``, which already makes it optional). ``prefix`` (a signature field's,
    DSPy's ``prefix=``) is the field's label in the base-model layout.
    """

    name: str
    type: TypeRef
    desc: str | None = None
    default: Any = None
    prefix: str | None = None
    span: Span | None = None


class EnumIR(Node):
    """``enum Priority { low, medium, high }``; ``descs`` holds per-value descriptions."""

    name: str
    values: list[str]
    desc: str | None = None
    descs: dict[str, str] = Field(default_factory=dict)
    span: Span | None = None


class ClassIR(Node):
    """``class Address { street: str  zip: str? }`` — a structured output type."""

    name: str
    fields: list[FieldIR]
    desc: str | None = None
    span: Span | None = None


# ---------------------------------------------------------------- LMs, tools, signatures


class WeightsFileIR(Node):
    """A weights file an LM runs with, pinned by content: ``path`` is relative to the
    artifact's folder in an artifact (absolute during a build); loading refuses a file
    whose size or sha256 differs."""

    path: str
    sha256: str
    size: int
    format: Literal["gguf-lora"] = "gguf-lora"


class TunedIR(Node):
    """How an LM's weights were tuned (``bootstrap_finetune``).

    ``base`` is the model the tuning started from. ``method`` is "local-lora" (a LoRA
    adapter trained here, in ``adapter``, applied by llama.cpp on the base model) or
    "hosted" (a provider's fine-tuning job; the LM's ``model`` is the tuned model's name
    and ``job`` the job's id). ``training`` records how: records, epochs, learning rate,
    rank, alpha, seed, the loss curve's ends (only what the same build reproduces: no
    times). ``prompt`` is the layout the weights were trained on and are prompted with:
    "compact" drops the completion layout's instructions and guide lines (the tuned
    weights learned them; ``TunedCompletionAdapter``), "full" keeps the untuned layout.
    """

    base: str
    method: Literal["local-lora", "hosted"]
    adapter: WeightsFileIR | None = None
    job: str | None = None
    predictors: list[str] = Field(default_factory=list)
    training: dict[str, Any] = Field(default_factory=dict)
    prompt: Literal["full", "compact"] = "full"


class LMIR(Node):
    """A named LM: a litellm model string plus settings.

    ``settings`` holds sampling and client options (temperature, max_tokens, num_retries,
    timeout, api_base, ...). A secret is a reference ``{"env": "NAME"}``, resolved only
    when a call is made and never written anywhere. ``model_type`` is "chat" or "text"
    (text completion, for base models); None means: decided by the model (the embedded
    model is text). ``grammar`` says whether the model takes a GBNF grammar that
    constrains its replies to the declared types (llama.cpp does); None: the embedded
    models do, others do not. ``tuned`` is set on an LM whose weights
    ``bootstrap_finetune`` trained.
    """

    name: str
    model: str
    settings: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    model_type: Literal["chat", "text"] | None = None
    grammar: bool | None = None
    tuned: TunedIR | None = None
    span: Span | None = None


class SignatureIR(Node):
    """A typed signature: instructions, input fields, output fields.

    A signature declared without instructions gets DSPy's default sentence, word for
    word (DSPy's ``_default_instructions``), so optimizers start from the same text:

    >>> sig = SignatureIR(name="S", inputs=[FieldIR(name="a", type=TypeRef(kind="str")),
    ...     FieldIR(name="b", type=TypeRef(kind="str"))],
    ...     outputs=[FieldIR(name="c", type=TypeRef(kind="str"))])
    >>> sig.default_instructions()
    'Given the fields `a`, `b`, produce the fields `c`.'
    """

    name: str
    instructions: str = ""
    inputs: list[FieldIR] = Field(default_factory=list)
    outputs: list[FieldIR] = Field(default_factory=list)
    span: Span | None = None

    def default_instructions(self) -> str:
        """DSPy's instructions for a signature that has none."""
        ins = ", ".join(f"`{f.name}`" for f in self.inputs)
        outs = ", ".join(f"`{f.name}`" for f in self.outputs)
        return f"Given the fields {ins}, produce the fields {outs}."


class ToolIR(Node):
    """A Python callable by import path (``"package.module:function"``), typed."""

    name: str
    import_path: str
    params: list[FieldIR] = Field(default_factory=list)
    returns: TypeRef = Field(default_factory=lambda: TypeRef(kind="any"))
    desc: str | None = None
    span: Span | None = None


# ---------------------------------------------------------------- predictors


class Demo(Node):
    """One example shown in a predictor's prompt.

    ``values`` maps field names (inputs and outputs of the predictor's *effective*
    signature, e.g. including ``reasoning`` for chain of thought when bootstrapped)
    to JSON values. ``kind`` says where it came from.
    """

    values: dict[str, Any]
    kind: Literal["labeled", "bootstrapped"] = "labeled"


PredictorKind = Literal[
    "predict", "chain_of_thought", "react", "best_of_n", "refine", "multi_chain_comparison"
]


class PredictorIR(Node):
    """A predictor bound at a module step: what optimizers tune.

    ``signature`` is the declared signature (its ``instructions`` are the tunable
    instructions). ``options`` are kind-specific: react → ``tools`` (list of tool
    names), ``max_iters``; best_of_n/refine → ``n``, ``reward`` (metric name),
    ``threshold``; multi_chain_comparison → ``m``. ``lm`` names an ``LMIR`` (a per-step
    override); None means the task LM of the context. ``adapter`` is "auto" (field
    headers for chat models, the compact completion layout for text models), "chat",
    "json" or "completion".
    """

    id: str
    kind: PredictorKind = "predict"
    signature: SignatureIR
    demos: list[Demo] = Field(default_factory=list)
    lm: str | None = None
    adapter: Literal["auto", "chat", "json", "completion"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict)
    span: Span | None = None


# ---------------------------------------------------------------- modules


class ExprIR(Node):
    """A value flowing into a step or a return.

    - ``kind="ref"``: ``path`` is ``["ticket"]`` for a module input, or
      ``["t", "priority"]`` for output ``priority`` of step ``t``.
    - ``kind="literal"``: ``value`` is a JSON value.
    """

    kind: Literal["ref", "literal"]
    path: list[str] = Field(default_factory=list)
    value: Any = None
    span: Span | None = None


#: The functions a constraint expression may call. The checker accepts exactly these and
#: the runtime evaluates exactly these (``lmpc.runtime.constraints.FUNCTIONS``; a test
#: keeps the two equal), so the list is part of the IR's contract.
CONSTRAINT_FUNCTIONS = ("len", "lower", "upper", "strip", "str", "int", "float", "abs", "min",
                        "max", "words", "startswith", "endswith", "contains", "matches")


class ConstraintIR(Node):
    """``assert``/``suggest`` on step outputs, e.g. ``assert len(t.reason) <= 100``.

    ``expr`` is a small boolean expression over the step's outputs, kept as a
    parsed tree: ``{"op": "<=", "args": [{"call": "len", "args": [ref]}, 100]}``,
    where a ref is ``{"ref": ["t", "reason"]}``. ``message`` is fed back to the LM on
    retry. hard (assert): retry up to ``max_retries`` then fail the example;
    soft (suggest): retry then continue.
    """

    kind: Literal["assert", "suggest"]
    expr: dict[str, Any]
    message: str
    max_retries: int = 2
    span: Span | None = None


class RetrieveIR(Node):
    """Built-in local retrieval (BM25) over a corpus file, or a tool."""

    corpus: str | None = None  # path relative to the source file's folder
    tool: str | None = None  # a tool name, for a real search service
    k: int = 3


class StepIR(Node):
    """One binding in a module body: ``name = <predictor|call|retrieve>(args)``.

    kind="predictor": ``predictor`` is the id in ``ProgramIR.predictors``.
    kind="call": ``module`` names another module.
    kind="retrieve": ``retrieve`` configures it; its output field is ``passages``.
    kind="tool": ``tool`` names a tool called directly; its output field is ``result``.
    """

    name: str
    kind: Literal["predictor", "call", "retrieve", "tool"]
    predictor: str | None = None
    module: str | None = None
    retrieve: RetrieveIR | None = None
    tool: str | None = None
    args: dict[str, ExprIR] = Field(default_factory=dict)
    constraints: list[ConstraintIR] = Field(default_factory=list)
    span: Span | None = None


class ModuleIR(Node):
    """A module: typed inputs and outputs, steps in order, and the returned values."""

    name: str
    inputs: list[FieldIR] = Field(default_factory=list)
    outputs: list[FieldIR] = Field(default_factory=list)
    steps: list[StepIR] = Field(default_factory=list)
    returns: dict[str, ExprIR] = Field(default_factory=dict)
    desc: str | None = None
    span: Span | None = None


# ---------------------------------------------------------------- data, metrics, optimize


class SplitIR(Node):
    """How a dataset is split. Each part is a ratio (0 < x ≤ 1) or a count (int ≥ 1).

    Rows are shuffled with ``seed`` and cut in order train, val, test. A part that is
    None gets nothing, except that when every part is None the whole set is train.
    """

    train: float | int | None = None
    val: float | int | None = None
    test: float | int | None = None
    seed: int = 0


SplitPart = Literal["train", "val", "test"]


class DatasetIR(Node):
    """A dataset file: jsonl, csv or json (a list of objects), or one file per split.

    ``path`` is relative to the folder of the file that declares it (``base_dir`` in
    ``ProgramIR.sources``); ``mapping`` renames file columns to field names
    (``{"field": "column"}``); ``inputs`` lists which fields are inputs (the others
    are labels).

    ``files`` (instead of ``path``) holds data that comes already split — ``{"train":
    "train.jsonl", "val": "dev.jsonl", "test": "test.jsonl"}``; each file is its split,
    rows are never moved between them. ``split`` may then only cut a val part out of the
    train file (when no val file is given). ``files_sha256`` hashes each file.
    """

    name: str
    format: Literal["jsonl", "csv", "json"]
    path: str = ""
    files: dict[SplitPart, str] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=list)
    mapping: dict[str, str] = Field(default_factory=dict)
    split: SplitIR = Field(default_factory=SplitIR)
    sha256: str | None = None
    files_sha256: dict[SplitPart, str] = Field(default_factory=dict)
    span: Span | None = None


MetricKind = Literal[
    "exact_match", "f1", "contains", "numeric", "regex", "judge", "weighted", "python"
]


class MetricIR(Node):
    """A metric.

    - exact_match/f1/contains: ``field`` (the output compared with the label of the
      same name); ``options`` e.g. ``{"normalize": true}``.
    - numeric: ``field``, ``options={"tolerance": 0.01}``.
    - regex: ``field``, ``options={"pattern": "..."}`` (the output must match).
    - judge: ``signature`` names an LM-judge signature; ``lm`` optional LM name; the
      judge's first numeric/bool output is the score.
    - weighted: ``parts`` is a list of (weight, metric name) pairs.
    - python: ``import_path`` ``"pkg.mod:fn"`` called as fn(example, prediction, trace).
    """

    name: str
    kind: MetricKind
    field: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None
    lm: str | None = None
    parts: list[tuple[float, str]] = Field(default_factory=list)
    import_path: str | None = None
    span: Span | None = None


class PassIR(Node):
    """One optimizer pass in a pipeline: its registered name and checked parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    span: Span | None = None


class BudgetIR(Node):
    """Hard caps across a whole pipeline."""

    calls: int | None = None
    usd: float | None = None


class OptimizeIR(Node):
    """``optimize [<name> =] <module> with <metric> on <dataset> { roles, budget, seed,
    passes }``.

    ``lms`` maps roles to LM names: ``lm`` (task), ``prompt_model``, ``teacher``,
    ``reflection``. Missing roles default to the task LM. ``name`` (optional, unique)
    tells several blocks apart; a named block builds ``build/<name>.json``.
    """

    name: str | None = None
    program: str
    metric: str
    dataset: str
    lms: dict[str, str] = Field(default_factory=dict)
    budget: BudgetIR = Field(default_factory=BudgetIR)
    seed: int = 0
    threads: int | None = None
    passes: list[PassIR] = Field(default_factory=list)
    span: Span | None = None


class ExpectIR(Node):
    """One expectation of a test: ``priority == high`` or ``summary contains "down"``."""

    field: str
    op: Literal["==", "!=", "contains", "matches", "<", "<=", ">", ">="]
    value: Any
    span: Span | None = None


class TestIR(Node):
    """``test "name" { Module(args) expect ... }``."""

    name: str
    module: str
    inputs: dict[str, Any]
    expect: list[ExpectIR] = Field(default_factory=list)
    span: Span | None = None


class EnsembleIR(Node):
    """Several variants of the program's predictors, combined per output field.

    Each member maps predictor id → the tuned state of that predictor (a full
    PredictorIR). ``reduce`` is "majority" or a Python callable "pkg.mod:fn".
    """

    members: list[dict[str, PredictorIR]]
    reduce: str = "majority"


class SourceIR(Node):
    """A source file that went into the program, with its content hash."""

    path: str
    sha256: str


class ProgramIR(Node):
    """Everything a compile unit declares, checked and resolved (imports merged)."""

    sources: list[SourceIR] = Field(default_factory=list)
    base_dir: str = "."  # folder of the root file; relative data/corpus paths resolve here
    lms: dict[str, LMIR] = Field(default_factory=dict)
    enums: dict[str, EnumIR] = Field(default_factory=dict)
    classes: dict[str, ClassIR] = Field(default_factory=dict)
    signatures: dict[str, SignatureIR] = Field(default_factory=dict)
    tools: dict[str, ToolIR] = Field(default_factory=dict)
    modules: dict[str, ModuleIR] = Field(default_factory=dict)
    predictors: dict[str, PredictorIR] = Field(default_factory=dict)
    datasets: dict[str, DatasetIR] = Field(default_factory=dict)
    metrics: dict[str, MetricIR] = Field(default_factory=dict)
    optimizes: list[OptimizeIR] = Field(default_factory=list)
    tests: list[TestIR] = Field(default_factory=list)
    ensemble: EnsembleIR | None = None

    def modules_of(self, module: str) -> list[str]:
        """``module`` and every module it calls, directly or not (unknown names skipped)."""
        seen: list[str] = []
        todo = [module]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.modules:
                continue
            seen.append(name)
            todo += [s.module for s in self.modules[name].steps if s.kind == "call" and s.module]
        return seen

    def predictors_of(self, module: str) -> list[PredictorIR]:
        """Predictors reachable from ``module`` (through calls), in execution order."""
        seen: list[str] = []

        def walk(name: str) -> None:
            for step in self.modules[name].steps:
                if step.kind == "predictor" and step.predictor and step.predictor not in seen:
                    seen.append(step.predictor)
                elif step.kind == "call" and step.module:
                    walk(step.module)

        walk(module)
        return [self.predictors[p] for p in seen]


# A dataset row is data every stage above the IR shares (eval loads it, passes learn from
# it, metrics score it), so it lives here rather than with the passes.
@dataclass(frozen=True)
class Example:
    """One dataset row: input fields, label fields, and where it came from."""

    inputs: dict[str, Any]
    labels: dict[str, Any]
    source: str = ""  # "file.jsonl:12" — so a bad row can be named
    index: int = 0

    @property
    def values(self) -> dict[str, Any]:
        return {**self.inputs, **self.labels}
