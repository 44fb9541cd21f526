"""AST of a ``.lmp`` file: what the parser produces and semantic analysis consumes.

Every node is a small dataclass with a ``span`` (an :class:`lmpc.ir.Span`;
``end_col`` is exclusive, as in Lark). Spans and the raw spelling of literals are left
out of equality, so a file and its formatted twin parse to equal trees:

>>> from lmpc.grammar.parser import parse
>>> a, _ = parse("enum P { low, high }", "a.lmp")
>>> b, _ = parse("enum P {\\n  low,\\n  high,\\n}", "b.lmp")
>>> a == b, a.decls[0].members[1].name, a.decls[0].span.col
(True, 'high', 1)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from lmpc.ir import Span

NO_SPAN = Span(file="<unknown>", line=1, col=1, end_line=1, end_col=1)


def _span() -> Span:
    return field(default_factory=lambda: NO_SPAN, compare=False, repr=False)


@dataclass
class Node:
    """Base of all AST nodes."""

    def children(self) -> Iterator[Node]:
        """Direct child nodes, in field order (lists are flattened)."""
        for f in fields(self):
            value = getattr(self, f.name)
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, Node):
                    yield item

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()


class Visitor:
    """Dispatches ``visit(node)`` to ``visit_<NodeClass>``, else visits the children.

    >>> from lmpc.grammar.parser import parse
    >>> class Names(Visitor):
    ...     def __init__(self): self.seen = []
    ...     def visit_Ref(self, node): self.seen.append(node.name)
    >>> v = Names(); v.visit(parse("module M() -> () { t = predict S(x = a.b) }", "m")[0])
    >>> v.seen
    ['a.b']
    """

    def visit(self, node: Node) -> object:
        method = getattr(self, "visit_" + type(node).__name__, None)
        return method(node) if method is not None else self.generic_visit(node)

    def generic_visit(self, node: Node) -> None:
        for child in node.children():
            self.visit(child)


# ---------------------------------------------------------------- values and expressions


@dataclass
class Literal(Node):
    """A string, number or boolean literal; ``raw`` is how a number was spelled."""

    value: str | int | float | bool
    raw: str | None = field(default=None, compare=False, repr=False)
    span: Span = _span()


@dataclass
class Ref(Node):
    """A name or dotted path: ``ticket``, ``t.reason``, an enum value, an LM name."""

    path: list[str]
    span: Span = _span()

    @property
    def name(self) -> str:
        """The dotted spelling."""
        return ".".join(self.path)


@dataclass
class EnvRef(Node):
    """``env.NAME``: a secret read from the environment when an LM is called."""

    name: str
    span: Span = _span()


@dataclass
class ListExpr(Node):
    """``[a, b, c]``."""

    items: list[Expr]
    span: Span = _span()


@dataclass
class DictItem(Node):
    """``key: value`` inside a dict value."""

    key: str
    value: Expr
    span: Span = _span()


@dataclass
class DictExpr(Node):
    """``{ key: value, ... }`` as an option value (e.g. a dataset's ``map``)."""

    items: list[DictItem]
    span: Span = _span()


@dataclass
class Pair(Node):
    """``train 0.2`` in ``split: train 0.2, val 0.8, seed 7``."""

    name: str
    value: Literal
    span: Span = _span()


@dataclass
class Pairs(Node):
    """A comma-separated list of name-number pairs (``split:``, ``budget:``)."""

    items: list[Pair]
    span: Span = _span()


@dataclass
class FuncCall(Node):
    """``len(x)`` inside a constraint or expectation."""

    name: str
    args: list[Expr]
    span: Span = _span()


@dataclass
class UnaryOp(Node):
    """``not x``."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass
class BinaryOp(Node):
    """``a == b``, ``a and b``, ``x in [..]``, ``s contains "y"``, ``s matches "re"``."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


Expr = (
    Literal
    | Ref
    | EnvRef
    | ListExpr
    | DictExpr
    | Pairs
    | FuncCall
    | UnaryOp
    | BinaryOp
)

COMPARISON_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "contains", "matches")


@dataclass
class Arg(Node):
    """``name = value`` (or a bare positional ``value`` when ``name`` is None)."""

    name: str | None
    value: Expr
    span: Span = _span()


@dataclass
class Option(Node):
    """``key: value`` in an ``lm`` block, a ``dataset`` body or an ``optimize`` body."""

    key: str
    value: Expr
    span: Span = _span()


# ---------------------------------------------------------------- types


# Type nodes keep how a type was spelled (``Optional[str]`` stays ``Optional[str]``,
# ``'a'`` keeps its quotes, parentheses stay), so ``lmpc fmt`` prints it back as written;
# what a spelling means is the checker's business (``lmpc.compiler.check.typecheck``).
# ``grouped``: written in parentheses.


def _flag() -> bool:
    return field(default=False, compare=False, repr=False)  # type: ignore[return-value]


@dataclass
class NamedType(Node):
    """``str``, ``Priority``, ``list[T]``, ``Optional[T]``, ``Literal['a']`` (a name, maybe
    dotted, plus type arguments; ``...`` in ``tuple[int, ...]`` is a NamedType too)."""

    name: str
    args: list[TypeExpr] = field(default_factory=list)
    grouped: bool = _flag()
    span: Span = _span()


@dataclass
class OptionalType(Node):
    """``T?``."""

    inner: TypeExpr
    grouped: bool = _flag()
    span: Span = _span()


@dataclass
class LiteralType(Node):
    """``"spam" | "ham"`` (one or more literal values); ``raws`` is how each was written."""

    values: list[str | int | float | bool]
    raws: list[str] = field(default_factory=list, compare=False, repr=False)
    grouped: bool = _flag()
    span: Span = _span()


@dataclass
class UnionType(Node):
    """``int | str | None`` (PEP 604, or lmpc's own ``|``), members in order."""

    members: list[TypeExpr]
    grouped: bool = _flag()
    span: Span = _span()


TypeExpr = NamedType | OptionalType | LiteralType | UnionType


@dataclass
class Param(Node):
    """``name: type`` with an optional default (tool, module inputs and outputs)."""

    name: str
    type: TypeExpr
    default: Expr | None = None
    span: Span = _span()


# ---------------------------------------------------------------- declarations


@dataclass
class Import(Node):
    """``import "common.lmp"``."""

    path: str
    span: Span = _span()


@dataclass
class LMDecl(Node):
    """``lm fast = "openai/gpt-4o-mini" { temperature: 0.0, api_key: env.KEY }``."""

    name: str
    model: str
    options: list[Option] = field(default_factory=list)
    span: Span = _span()


@dataclass
class EnumMember(Node):
    """One value of an enum, with an optional description."""

    name: str
    desc: str | None = None
    span: Span = _span()


@dataclass
class EnumDecl(Node):
    """``enum Priority { low, medium, high }``."""

    name: str
    members: list[EnumMember]
    doc: str | None = None
    span: Span = _span()


@dataclass
class ClassField(Node):
    """``street: str "street and number"`` in a class."""

    name: str
    type: TypeExpr
    desc: str | None = None
    span: Span = _span()


@dataclass
class ClassDecl(Node):
    """``class Address { street: str "desc"  zip: str? }``, with an optional docstring."""

    name: str
    fields: list[ClassField]
    doc: str | None = None
    span: Span = _span()


@dataclass
class TypeAlias(Node):
    """``type Label = "spam" | "ham"``."""

    name: str
    type: TypeExpr
    span: Span = _span()


@dataclass
class SigField(Node):
    """``in ticket: str "desc"`` / ``out priority: Priority``; ``type`` None means str;
    ``prefix "Ticket:"`` is DSPy's ``prefix=`` (the field's label for base models)."""

    direction: str  # "in" | "out"
    name: str
    type: TypeExpr | None = None
    desc: str | None = None
    prefix: str | None = None
    span: Span = _span()


@dataclass
class SignatureDecl(Node):
    """A signature, block form or DSPy string form (``text`` holds the verbatim string).

    For the string form ``fields`` are parsed from ``text`` (a field with no type has
    ``type=None``, meaning str) and their spans point inside the string; ``doc`` is then
    the optional second string (the instructions).
    """

    name: str
    fields: list[SigField]
    doc: str | None = None
    text: str | None = None
    text_span: Span | None = field(default=None, compare=False, repr=False)  # the string's
    span: Span = _span()

    @property
    def inputs(self) -> list[SigField]:
        """The ``in`` fields."""
        return [f for f in self.fields if f.direction == "in"]

    @property
    def outputs(self) -> list[SigField]:
        """The ``out`` fields."""
        return [f for f in self.fields if f.direction == "out"]


@dataclass
class ToolDecl(Node):
    """``tool search(query: str) -> list[str] = python "mod:fn" "description"``."""

    name: str
    params: list[Param]
    returns: TypeExpr | None
    import_path: str
    desc: str | None = None
    span: Span = _span()


# ---------------------------------------------------------------- modules


PREDICTOR_KINDS = (
    "predict", "chain_of_thought", "react", "best_of_n", "refine", "multi_chain_comparison",
)


@dataclass
class PredictorCall(Node):
    """``chain_of_thought Triage(ticket = ticket)``, ``predict(lm = fast) S(...)``."""

    kind: str
    signature: str
    args: list[Arg]
    options: list[Arg] = field(default_factory=list)
    span: Span = _span()


@dataclass
class Call(Node):
    """``OtherModule(x = t.reason)``: a call of a module or a tool by name."""

    target: str
    args: list[Arg]
    span: Span = _span()


@dataclass
class Retrieve(Node):
    """``retrieve(corpus = "c.txt", k = 3)(query = q)``; its output field is ``passages``."""

    options: list[Arg]
    args: list[Arg]
    span: Span = _span()


StepValue = PredictorCall | Call | Retrieve


@dataclass
class Step(Node):
    """``name = <predictor call | module/tool call | retrieve>``."""

    name: str
    value: StepValue
    span: Span = _span()


@dataclass
class Constraint(Node):
    """``assert expr, "message"`` (hard) or ``suggest expr, "message"`` (soft)."""

    kind: str  # "assert" | "suggest"
    expr: Expr
    message: str | None = None
    span: Span = _span()


@dataclass
class Return(Node):
    """``return (priority = t.priority, summary = s.summary)``."""

    values: list[Arg]
    span: Span = _span()


Stmt = Step | Constraint | Return


@dataclass
class ModuleDecl(Node):
    """``module Name(inputs) -> (outputs) { doc; steps; constraints; return }``."""

    name: str
    inputs: list[Param]
    outputs: list[Param]
    body: list[Stmt]
    doc: str | None = None
    span: Span = _span()


# ---------------------------------------------------------------- data, metrics, optimize


@dataclass
class DatasetDecl(Node):
    """``dataset d = jsonl "path" { inputs: [..]  map: {..}  split: train 0.2, ... }``, or
    ``dataset d = jsonl { train: "a.jsonl"  val: "b.jsonl"  test: "c.jsonl" }`` (``path``
    None: the data is already split into files)."""

    name: str
    format: str
    path: str | None
    options: list[Option] = field(default_factory=list)
    span: Span = _span()

    def option(self, key: str) -> Option | None:
        """The last option named ``key``, if any."""
        found = [o for o in self.options if o.key == key]
        return found[-1] if found else None


@dataclass
class MetricCall(Node):
    """A built-in metric: ``exact_match(priority)``, ``judge(Sig, lm = fast)``."""

    name: str
    args: list[Arg]
    span: Span = _span()


@dataclass
class MetricTerm(Node):
    """``0.7 * acc`` in a weighted combination (weight 1 when omitted)."""

    weight: Literal
    metric: str
    span: Span = _span()


@dataclass
class MetricSum(Node):
    """``0.7 * acc + 0.3 * f``."""

    terms: list[MetricTerm]
    span: Span = _span()


@dataclass
class PythonRef(Node):
    """``python "package.module:function"``."""

    import_path: str
    span: Span = _span()


MetricValue = MetricCall | MetricSum | PythonRef


@dataclass
class MetricDecl(Node):
    """``metric name = <built-in call | weighted sum | python "mod:fn">``."""

    name: str
    value: MetricValue
    span: Span = _span()


@dataclass
class PassCall(Node):
    """One optimizer pass in a pipeline: ``mipro_v2(auto = light)``, or ``copro`` alone
    (``parens`` False: written without parentheses, kept so by the formatter)."""

    name: str
    args: list[Arg]
    parens: bool = field(default=True, compare=False)
    span: Span = _span()


@dataclass
class OptimizeDecl(Node):
    """``optimize [name =] Program with metric on dataset { options; pass then pass ... }``;
    ``name`` tells several blocks of one program apart (``lmpc build --optimize NAME``)."""

    program: str
    metric: str
    dataset: str
    options: list[Option]
    passes: list[PassCall]
    name: str | None = None
    span: Span = _span()

    def option(self, key: str) -> Option | None:
        """The last option named ``key``, if any."""
        found = [o for o in self.options if o.key == key]
        return found[-1] if found else None


@dataclass
class TestDecl(Node):
    """``test "name" { Module(args) expect field == value, ... }``."""

    name: str
    call: Call
    expects: list[Expr]
    span: Span = _span()

    __test__ = False  # not a pytest test class


Decl = (
    Import
    | LMDecl
    | EnumDecl
    | ClassDecl
    | TypeAlias
    | SignatureDecl
    | ToolDecl
    | ModuleDecl
    | DatasetDecl
    | MetricDecl
    | OptimizeDecl
    | TestDecl
)


@dataclass
class Comment(Node):
    """A ``//`` or ``/* */`` comment, kept for the formatter (not part of equality)."""

    text: str
    span: Span = _span()


@dataclass
class File(Node):
    """A parsed ``.lmp`` file: its declarations in order, and its comments."""

    path: str = field(compare=False)
    decls: list[Decl] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list, compare=False, repr=False)
    span: Span = _span()

    def of_type(self, kind: type) -> list:
        """Declarations of one node class, in order."""
        return [d for d in self.decls if isinstance(d, kind)]
