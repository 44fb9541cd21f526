"""Grammar rules -> AST nodes. Only builds nodes; every rule maps to one method here.

Lark calls the methods while it parses (its tree-less LALR mode), so no parse tree
is ever built; :func:`lark_callbacks` adapts them to Lark's callback interface.
"""

from __future__ import annotations

import contextvars
import inspect
import re
from typing import Any

from lark import Token

from lmpc.grammar import ast
from lmpc.ir import Span

CURRENT_PATH: contextvars.ContextVar[str] = contextvars.ContextVar(
    "lmpc_parse_path", default="<unknown>"
)


# Position of a rule: (line, col, end_line, end_col), 1-based, end column exclusive;
# None for a rule that matched no text.
Pos = tuple[int, int, int, int] | None

# Every span has all its fields set; one shared set serves them all (pydantic only adds
# to it, and adding a field already in it changes nothing). It saves 20,000 objects the
# cyclic GC would walk after a big parse.
_ALL_SET = {"file", "line", "col", "end_line", "end_col"}
_new_object = object.__new__
_set_attr = object.__setattr__


def _slot_setter(cls: type, name: str) -> Any:
    """The ``__set__`` of the slot ``name`` that instances of ``cls`` use."""
    owner = next(k for k in cls.__mro__ if name in vars(k))
    return vars(owner)[name].__set__


_set_fields_set = _slot_setter(Span, "__pydantic_fields_set__")
_set_extra = _slot_setter(Span, "__pydantic_extra__")
_set_private = _slot_setter(Span, "__pydantic_private__")


def make_span(file: str, line: int, col: int, end_line: int, end_col: int) -> Span:
    """``Span(file=..., line=..., ...)`` for values known to be valid, without pydantic's
    validation (twice as fast; a big parse makes 20,000 spans). The result equals what
    pydantic would build: same fields, same fields-set, no extras."""
    span = _new_object(Span)
    _set_attr(span, "__dict__", {"file": file, "line": line, "col": col,
                                 "end_line": end_line, "end_col": end_col})
    _set_fields_set(span, _ALL_SET)
    _set_extra(span, None)
    _set_private(span, None)
    return span


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def unescape(body: str) -> str:
    """The value of a string literal's body; unknown escapes keep their backslash."""

    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc.startswith("u") and len(esc) == 5:
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, "\\" + esc)

    return _ESCAPE_RE.sub(one, body) if "\\" in body else body


def string_value(token: Token) -> str:
    """The value of a STRING token."""
    return unescape(str(token)[1:-1])


def doc_value(token: Token) -> str:
    """The value of a DOCSTRING token: common indentation and trailing spaces removed."""
    text = inspect.cleandoc(str(token)[3:-3])
    return "\n".join(line.rstrip() for line in text.split("\n"))


class SourceLimit(Exception):
    """Source beyond what lmpc takes (too deep, a number too long), where it is."""

    def __init__(self, code: str, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.code, self.message, self.line, self.col = code, message, line, col


MAX_DIGITS = 1000  # Python refuses ints past 4,300 digits; no setting needs 1,000


def number_value(token: Token | str) -> int | float:
    """An int when spelled as one, else a float."""
    text = str(token)
    if len(text) > MAX_DIGITS:
        line = getattr(token, "line", None) or 1
        col = getattr(token, "column", None) or 1
        raise SourceLimit("E0007", f"a number of {len(text)} characters (the limit is "
                          f"{MAX_DIGITS})", line, col)
    if "." in text or "e" in text or "E" in text:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise SourceLimit("E0007", "a number too large for a float",
                              getattr(token, "line", None) or 1,
                              getattr(token, "column", None) or 1)
        return value
    return int(text)


class _Prefix:
    """The value of ``prefix "Question:"`` on its way into its SigField."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


def _is(token: Any, kind: str) -> bool:
    return isinstance(token, Token) and token.type == kind


class ToAst:
    """Builds :mod:`lmpc.grammar.ast` nodes, one method per grammar rule.

    Every rule method takes ``(pos, children)``: the rule's position (:data:`Pos`) and
    its value children (keywords and punctuation left out). They are called while the
    file is parsed (by :mod:`lmpc.grammar.driver`, or by Lark through
    :func:`lark_callbacks`), so no parse tree is ever built. The file name in
    every span is ``path`` (by default the one set in :data:`CURRENT_PATH` for the
    parse in progress).
    """

    def __init__(self, path: str | None = None) -> None:
        self._path = path

    @property
    def path(self) -> str:
        return self._path if self._path is not None else CURRENT_PATH.get()

    # grouping parentheses: `"(" type ")"` and `"(" expr ")"` keep the inner node
    def type(self, pos: Pos, c: list) -> Any:
        return c[0]

    operand = type

    # ------------------------------------------------------------ helpers
    def span(self, pos: Pos) -> Span:
        if pos is None:
            return ast.NO_SPAN
        path = self._path
        return make_span(path if path is not None else CURRENT_PATH.get(), *pos)

    def tspan(self, tok: Token) -> Span:
        return make_span(self.path, tok.line or 1, tok.column or 1, tok.end_line,
                         tok.end_column)

    @staticmethod
    def _doc(children: list) -> tuple[str | None, list]:
        """Split a leading DOCSTRING off a block's children."""
        rest = [c for c in children if not _is(c, "DOCSTRING")]
        docs = [doc_value(c) for c in children if _is(c, "DOCSTRING")]
        return (docs[0] if docs else None), rest

    # ------------------------------------------------------------ file
    def start(self, pos: Pos, children: list) -> ast.File:
        return ast.File(path=self.path, decls=list(children), span=self.span(pos))

    def import_decl(self, pos: Pos, c: list) -> ast.Import:
        return ast.Import(path=string_value(c[0]), span=self.span(pos))

    def lm_decl(self, pos: Pos, c: list) -> ast.LMDecl:
        options = c[2] if len(c) > 2 else []
        return ast.LMDecl(name=str(c[0]), model=string_value(c[1]), options=options,
                          span=self.span(pos))

    def inline_options(self, pos: Pos, c: list) -> list[ast.Option]:
        return list(c)

    def option(self, pos: Pos, c: list) -> ast.Option:
        return ast.Option(key=str(c[0]), value=c[1], span=self.span(pos))

    entry = option

    def block_body(self, pos: Pos, c: list) -> list[ast.Option]:
        return list(c)

    # ------------------------------------------------------------ types
    def enum_decl(self, pos: Pos, c: list) -> ast.EnumDecl:
        doc, rest = self._doc(c[1:])
        return ast.EnumDecl(name=str(c[0]), members=rest, doc=doc, span=self.span(pos))

    def enum_member(self, pos: Pos, c: list) -> ast.EnumMember:
        desc = string_value(c[1]) if len(c) > 1 else None
        return ast.EnumMember(name=str(c[0]), desc=desc, span=self.span(pos))

    def class_decl(self, pos: Pos, c: list) -> ast.ClassDecl:
        doc, rest = self._doc(c[1:])
        return ast.ClassDecl(name=str(c[0]), fields=rest, doc=doc, span=self.span(pos))

    def class_field(self, pos: Pos, c: list) -> ast.ClassField:
        desc = string_value(c[2]) if len(c) > 2 else None
        return ast.ClassField(name=str(c[0]), type=c[1], desc=desc, span=self.span(pos))

    def type_decl(self, pos: Pos, c: list) -> ast.TypeAlias:
        return ast.TypeAlias(name=str(c[0]), type=c[1], span=self.span(pos))

    def named_type(self, pos: Pos, c: list) -> ast.NamedType:
        return ast.NamedType(name=c[0], args=list(c[1:]), span=self.span(pos))

    def ellipsis_type(self, pos: Pos, c: list) -> ast.NamedType:
        return ast.NamedType(name="...", span=self.span(pos))

    def dotted_name(self, pos: Pos, c: list) -> str:
        return ".".join(c)  # NAME tokens: the result is a plain str

    def optional_type(self, pos: Pos, c: list) -> ast.OptionalType:
        return ast.OptionalType(inner=c[0], span=self.span(pos))

    def literal_type(self, pos: Pos, c: list) -> ast.LiteralType:
        value, raw = c[0]
        return ast.LiteralType(values=[value], raws=[raw], span=self.span(pos))

    def union_type(self, pos: Pos, c: list) -> ast.TypeExpr:
        """``a | b``: literals next to literals join one LiteralType (``"a" | "b"``, as
        before unions existed); other members gather in one UnionType, left to right.
        A parenthesized operand stays one member."""
        left, right = c
        span = self.span(pos)
        if (isinstance(left, ast.LiteralType) and isinstance(right, ast.LiteralType)
                and not left.grouped and not right.grouped):
            return ast.LiteralType(values=[*left.values, *right.values],
                                   raws=[*left.raws, *right.raws], span=span)
        if isinstance(left, ast.UnionType) and not left.grouped:
            last = left.members[-1]
            if (isinstance(last, ast.LiteralType) and isinstance(right, ast.LiteralType)
                    and not last.grouped and not right.grouped):
                joined = ast.LiteralType(values=[*last.values, *right.values],
                                         raws=[*last.raws, *right.raws], span=last.span)
                return ast.UnionType(members=[*left.members[:-1], joined], span=span)
            return ast.UnionType(members=[*left.members, right], span=span)
        return ast.UnionType(members=[left, right], span=span)

    def grouped_type(self, pos: Pos, c: list) -> ast.TypeExpr:
        node = c[0]
        node.grouped = True
        return node

    def literal_atom(self, pos: Pos, c: list) -> tuple[str | int | float | bool, str]:
        tok = c[0]
        raw = str(tok)
        if tok.type in ("STRING", "SQSTRING"):
            return string_value(tok), raw
        if tok.type == "NUMBER":
            return number_value(tok), raw
        return tok.type == "TRUE", raw

    # ------------------------------------------------------------ signatures, tools
    def signature_block(self, pos: Pos, c: list) -> ast.SignatureDecl:
        doc, rest = self._doc(c[1:])
        return ast.SignatureDecl(name=str(c[0]), fields=rest, doc=doc, span=self.span(pos))

    def signature_string(self, pos: Pos, c: list) -> ast.SignatureDecl:
        # Fields are filled in by the parser, which parses the string's contents. A second
        # string is the instructions (DSPy's `Signature("q -> a", "Answer briefly.")`).
        doc = string_value(c[2]) if len(c) > 2 else None
        return ast.SignatureDecl(name=str(c[0]), fields=[], text=string_value(c[1]), doc=doc,
                                 text_span=self.tspan(c[1]), span=self.span(pos))

    def sig_field(self, pos: Pos, c: list) -> ast.SigField:
        direction, name, *rest = c
        prefix = rest.pop().value if rest and isinstance(rest[-1], _Prefix) else None
        desc = string_value(rest.pop()) if rest and _is(rest[-1], "STRING") else None
        type_ = rest[0] if rest else None
        return ast.SigField(direction=direction, name=str(name), type=type_, desc=desc,
                            prefix=prefix, span=self.span(pos))

    def sig_prefix(self, pos: Pos, c: list) -> _Prefix:
        return _Prefix(string_value(c[0]))

    def direction(self, pos: Pos, c: list) -> str:
        return str(c[0])

    def tool_decl(self, pos: Pos, c: list) -> ast.ToolDecl:
        name, *rest = c
        params = rest.pop(0) if rest and isinstance(rest[0], list) else []
        returns = rest.pop(0) if rest and not isinstance(rest[0], Token) else None
        import_path = string_value(rest[0])
        desc = string_value(rest[1]) if len(rest) > 1 else None
        return ast.ToolDecl(name=str(name), params=params, returns=returns,
                            import_path=import_path, desc=desc, span=self.span(pos))

    def params(self, pos: Pos, c: list) -> list[ast.Param]:
        return list(c)

    def param(self, pos: Pos, c: list) -> ast.Param:
        default = c[2] if len(c) > 2 else None
        return ast.Param(name=str(c[0]), type=c[1], default=default, span=self.span(pos))

    # ------------------------------------------------------------ modules
    def module_decl(self, pos: Pos, c: list) -> ast.ModuleDecl:
        name, inputs, outputs, *body = c
        doc, body = self._doc(body)
        return ast.ModuleDecl(name=str(name), inputs=inputs, outputs=outputs, body=body,
                              doc=doc, span=self.span(pos))

    def module_inputs(self, pos: Pos, c: list) -> list[ast.Param]:
        return c[0] if c else []

    module_outputs = module_inputs

    def step(self, pos: Pos, c: list) -> ast.Step:
        return ast.Step(name=str(c[0]), value=c[1], span=self.span(pos))

    def predictor_call(self, pos: Pos, c: list) -> ast.PredictorCall:
        kind = c[0]
        options = c[1] if len(c) == 4 else []
        return ast.PredictorCall(kind=kind, signature=str(c[-2]), args=c[-1], options=options,
                                 span=self.span(pos))

    def predictor_kind(self, pos: Pos, c: list) -> str:
        return str(c[0])

    def call(self, pos: Pos, c: list) -> ast.Call:
        return ast.Call(target=str(c[0]), args=c[1], span=self.span(pos))

    def retrieve_call(self, pos: Pos, c: list) -> ast.Retrieve:
        return ast.Retrieve(options=c[0], args=c[1], span=self.span(pos))

    def assert_stmt(self, pos: Pos, c: list) -> ast.Constraint:
        return self._constraint("assert", pos, c)

    def suggest_stmt(self, pos: Pos, c: list) -> ast.Constraint:
        return self._constraint("suggest", pos, c)

    def _constraint(self, kind: str, pos: Pos, c: list) -> ast.Constraint:
        message = string_value(c[1]) if len(c) > 1 else None
        return ast.Constraint(kind=kind, expr=c[0], message=message, span=self.span(pos))

    def return_stmt(self, pos: Pos, c: list) -> ast.Return:
        return ast.Return(values=c[0], span=self.span(pos))

    def call_args(self, pos: Pos, c: list) -> list[ast.Arg]:
        return list(c)

    def arg(self, pos: Pos, c: list) -> ast.Arg:
        name = str(c[0]) if len(c) == 2 else None
        return ast.Arg(name=name, value=c[-1], span=self.span(pos))

    # ------------------------------------------------------------ values, expressions
    def string(self, pos: Pos, c: list) -> ast.Literal:
        return ast.Literal(value=string_value(c[0]), span=self.span(pos))

    def number(self, pos: Pos, c: list) -> ast.Literal:
        return ast.Literal(value=number_value(c[0]), raw=str(c[0]), span=self.span(pos))

    def true(self, pos: Pos, c: list) -> ast.Literal:
        return ast.Literal(value=True, span=self.span(pos))

    def false(self, pos: Pos, c: list) -> ast.Literal:
        return ast.Literal(value=False, span=self.span(pos))

    def ref(self, pos: Pos, c: list) -> ast.Ref | ast.EnvRef:
        path = list(map(str, c))
        if len(path) == 2 and path[0] == "env":
            return ast.EnvRef(name=path[1], span=self.span(pos))
        return ast.Ref(path=path, span=self.span(pos))

    def list_value(self, pos: Pos, c: list) -> ast.ListExpr:
        return ast.ListExpr(items=list(c), span=self.span(pos))

    expr_list = list_value

    def dict_value(self, pos: Pos, c: list) -> ast.DictExpr:
        return ast.DictExpr(items=list(c), span=self.span(pos))

    def dict_item(self, pos: Pos, c: list) -> ast.DictItem:
        key = string_value(c[0]) if c[0].type == "STRING" else str(c[0])
        return ast.DictItem(key=key, value=c[1], span=self.span(pos))

    def or_op(self, pos: Pos, c: list) -> ast.BinaryOp:
        return ast.BinaryOp(op="or", left=c[0], right=c[1], span=self.span(pos))

    def and_op(self, pos: Pos, c: list) -> ast.BinaryOp:
        return ast.BinaryOp(op="and", left=c[0], right=c[1], span=self.span(pos))

    def not_op(self, pos: Pos, c: list) -> ast.UnaryOp:
        return ast.UnaryOp(op="not", operand=c[0], span=self.span(pos))

    def compare(self, pos: Pos, c: list) -> ast.BinaryOp:
        return ast.BinaryOp(op=c[1], left=c[0], right=c[2], span=self.span(pos))

    def comp_op(self, pos: Pos, c: list) -> str:
        return str(c[0])

    def func_call(self, pos: Pos, c: list) -> ast.FuncCall:
        return ast.FuncCall(name=str(c[0]), args=list(c[1:]), span=self.span(pos))

    # ------------------------------------------------------------ data, metrics, optimize
    def dataset_decl(self, pos: Pos, c: list) -> ast.DatasetDecl:
        name, fmt, *rest = c
        path = string_value(rest.pop(0)) if rest and isinstance(rest[0], Token) else None
        options = rest[0] if rest else []
        return ast.DatasetDecl(name=str(name), format=str(fmt), path=path, options=options,
                               span=self.span(pos))

    def pairs(self, pos: Pos, c: list) -> ast.Pairs:
        return ast.Pairs(items=list(c), span=self.span(pos))

    def pair(self, pos: Pos, c: list) -> ast.Pair:
        value = ast.Literal(value=number_value(c[1]), raw=str(c[1]), span=self.tspan(c[1]))
        return ast.Pair(name=str(c[0]), value=value, span=self.span(pos))

    def metric_decl(self, pos: Pos, c: list) -> ast.MetricDecl:
        return ast.MetricDecl(name=str(c[0]), value=c[1], span=self.span(pos))

    def metric_call(self, pos: Pos, c: list) -> ast.MetricCall:
        return ast.MetricCall(name=str(c[0]), args=c[1], span=self.span(pos))

    def metric_sum(self, pos: Pos, c: list) -> ast.MetricSum:
        return ast.MetricSum(terms=list(c), span=self.span(pos))

    def metric_term(self, pos: Pos, c: list) -> ast.MetricTerm:
        if len(c) == 2:
            weight = ast.Literal(value=number_value(c[0]), raw=str(c[0]),
                                 span=self.tspan(c[0]))
        else:
            weight = ast.Literal(value=1, raw=None, span=self.tspan(c[0]))  # implicit
        return ast.MetricTerm(weight=weight, metric=str(c[-1]), span=self.span(pos))

    def python_ref(self, pos: Pos, c: list) -> ast.PythonRef:
        return ast.PythonRef(import_path=string_value(c[0]), span=self.span(pos))

    def optimize_decl(self, pos: Pos, c: list) -> ast.OptimizeDecl:
        names = [x for x in c if isinstance(x, Token)]  # [name,] program, metric, dataset
        items = c[len(names):]
        name = str(names[0]) if len(names) == 4 else None
        program, metric, dataset = names[-3:]
        options = [x for x in items if isinstance(x, ast.Option)]
        passes = [x for x in items if isinstance(x, ast.PassCall)]
        return ast.OptimizeDecl(program=str(program), metric=str(metric), dataset=str(dataset),
                                options=options, passes=passes, name=name,
                                span=self.span(pos))

    def pass_call(self, pos: Pos, c: list) -> ast.PassCall:
        if len(c) == 1:  # a bare name: the pass with its defaults
            return ast.PassCall(name=str(c[0]), args=[], parens=False, span=self.span(pos))
        return ast.PassCall(name=str(c[0]), args=c[1], span=self.span(pos))

    # ------------------------------------------------------------ tests
    def test_decl(self, pos: Pos, c: list) -> ast.TestDecl:
        expects = [e for clause in c[2:] for e in clause]
        return ast.TestDecl(name=string_value(c[0]), call=c[1], expects=expects,
                            span=self.span(pos))

    def expect_clause(self, pos: Pos, c: list) -> list:
        return list(c)


# ------------------------------------------------------------------ inline callbacks

# Tokens that carry a value; the others (keywords, punctuation) only shape the tree.
VALUE_TOKENS = frozenset({"NAME", "NUMBER", "STRING", "SQSTRING", "DOCSTRING", "TRUE",
                          "FALSE"})
# Rules written with `!` in lmp.lark: their keyword token *is* the value.
KEEP_TOKEN_RULES = frozenset({"direction", "predictor_kind", "comp_op"})
# Rule methods of ToAst (the other public names are helpers).
RULE_METHODS = tuple(name for name in dir(ToAst)
                     if not name.startswith("_") and name not in ("span", "tspan", "path"))


class _Wrapped:
    """A non-node rule result (a list, a name, a literal) with its source position."""

    __slots__ = ("value", "pos")

    def __init__(self, value: Any, pos: Pos) -> None:
        self.value, self.pos = value, pos


def node_pos(node: ast.Node) -> Pos:
    """The position of a rule's AST node, for the rule around it."""
    span = node.span  # type: ignore[attr-defined]
    if span is None or span is ast.NO_SPAN:
        return None
    return (span.line, span.col, span.end_line, span.end_col)


def _position(child: Any) -> Pos:
    if isinstance(child, Token):
        return (child.line, child.column, child.end_line, child.end_column)
    if isinstance(child, _Wrapped):
        return child.pos
    return node_pos(child) if isinstance(child, ast.Node) else None


def _callback(method: Any, keep_tokens: bool) -> Any:
    def callback(children: list) -> Any:
        first = last = None
        for child in children:
            first = _position(child)
            if first is not None:
                break
        for child in reversed(children):
            last = _position(child)
            if last is not None:
                break
        pos = (first[0], first[1], last[2], last[3]) if first and last else None
        values = [
            c.value if isinstance(c, _Wrapped) else c
            for c in children
            if keep_tokens or not isinstance(c, Token) or c.type in VALUE_TOKENS
        ]
        result = method(pos, values)
        if isinstance(result, ast.Node | Token):
            return result
        return _Wrapped(result, pos)

    return callback


class _Callbacks:
    """The object Lark reads rule callbacks from (``Lark(transformer=...)``)."""


def lark_callbacks() -> _Callbacks:
    """Every ToAst rule method as a callback for Lark's tree-less LALR mode.

    Lark (with ``keep_all_tokens=True``) calls ``callbacks.<rule>(children)`` at each
    reduction; the callback works out the rule's position from its children and
    passes the value children on. (Lark's parser is the slow path, used for files
    with syntax errors; see :mod:`lmpc.grammar.driver`.)
    """
    builder = ToAst()
    callbacks = _Callbacks()
    for name in RULE_METHODS:
        setattr(callbacks, name, _callback(getattr(builder, name), name in KEEP_TOKEN_RULES))
    return callbacks
