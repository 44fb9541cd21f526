"""The fast path of the parser: one loop that lexes and runs Lark's own LALR(1) table.

Lark's parser costs about 10 us a token on a big file: a generator per token, a
``Token`` per keyword and bracket, and three wrappers around every rule callback.
This loop does the same work with plain lists: the same parse table (so the same
language), the same token rules (:mod:`lmpc.grammar.lexer`: whitespace, keywords
only where the parser accepts them), and the same :class:`ToAst` methods with the
same positions. Which children a rule passes on is worked out once per rule from the
grammar instead of once per reduction.

It only handles valid input: at the first lexical or syntax error it returns None,
and the caller parses again with Lark, whose errors carry what the diagnostics need.

>>> from lmpc.grammar.parser import get_lark
>>> tree, comments = fast_parse(tables(get_lark()), "enum P { low } // x", "a.lmp")
>>> tree.decls[0].members[0].name, [str(c) for c in comments]
('low', ['// x'])
>>> fast_parse(tables(get_lark()), "enum P { low, }}", "a.lmp") is None
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

from lark import Lark, Token
from lark.parsers.lalr_analysis import Shift

from lmpc.grammar import ast
from lmpc.grammar.lexer import token_regex, word_tables
from lmpc.grammar.transformer import (
    KEEP_TOKEN_RULES,
    VALUE_TOKENS,
    Pos,
    SourceLimit,
    ToAst,
)

_MULTILINE = frozenset({"COMMENT", "DOCSTRING"})  # the tokens that may span lines

# How a reduction builds its value (see _Rule).
PASS, SPLICE, BUILD = 0, 1, 2
# AST nodes nested in one another (brackets, `not`, `or` chains, `T?`, list[...]): past
# this the later stages, which walk the tree recursively, would run out of stack.
MAX_DEPTH = 100


class TooDeep(SourceLimit):
    """The source nests deeper than ``MAX_DEPTH`` (where it first does)."""

    def __init__(self, path: str, line: int, col: int) -> None:
        super().__init__("E0006", f"nested more than {MAX_DEPTH} levels deep (brackets, "
                         "operators, type arguments or values inside one another)", line, col)


class _Rule(NamedTuple):
    """One grammar rule, as the loop applies it (a tuple: the loop unpacks it).

    ``kind`` is PASS (a ``?rule`` with one child: the child is the value), SPLICE (an
    ``_rule`` or repetition: its children join the parent's) or BUILD (a ToAst method
    makes the value). ``plan`` lists the children the value is made of, as
    ``(index, spliced)``; keywords and punctuation are left out. ``whole`` says the
    plan is every child, none spliced (the children list is the value as it is).
    """

    kind: int
    size: int
    origin: str
    whole: bool
    plan: tuple[tuple[int, bool], ...]
    method: Any


@dataclass(frozen=True)
class Tables:
    """Everything the loop needs, derived once from the Lark parser."""

    regex: Any  # re.Pattern: optional whitespace, then one token
    keywords: dict[str, str]
    punct: dict[str, str]
    kept_tokens: frozenset[str]  # terminals some rule passes on as a value
    collected: frozenset[str]  # ignored terminals handed back (comments)
    actions: dict[int, dict[str, int]]  # state -> symbol -> shift/goto state, or ~rule
    rules: tuple[_Rule, ...]
    start_states: dict[str, int]
    end_states: dict[str, int]


@functools.cache
def tables(lark: Lark) -> Tables:
    """The loop's tables for a parser built by :func:`lmpc.grammar.parser.get_lark`."""
    conf = lark.lexer_conf
    keywords, punct = word_tables(conf.terminals)
    parse_table = lark.parser.parser.parser.parse_table
    rule_index: dict[Any, int] = {}
    actions: dict[int, dict[str, int]] = {}
    for state, row in parse_table.states.items():
        actions[state] = {
            sym: arg if action is Shift else ~rule_index.setdefault(arg, len(rule_index))
            for sym, (action, arg) in row.items()
        }
    rules = tuple(_compile_rule(r) for r in sorted(rule_index, key=rule_index.__getitem__))
    kept = set(VALUE_TOKENS)
    for r in rule_index:
        if _callback_name(r) in KEEP_TOKEN_RULES:
            kept.update(s.name for s in r.expansion if s.is_term)
    return Tables(
        regex=token_regex(conf.terminals, skip_space=True), keywords=keywords, punct=punct,
        kept_tokens=frozenset(kept),
        collected=frozenset(n for n in conf.ignore if n in conf.callbacks and n != "WS"),
        actions=actions, rules=rules, start_states=dict(parse_table.start_states),
        end_states=dict(parse_table.end_states),
    )


def _callback_name(rule: Any) -> str:
    return str(rule.alias or rule.options.template_source or rule.origin.name)


def _compile_rule(rule: Any) -> _Rule:
    """Mirror Lark's tree builder: ``_rule`` children are inlined into the parent, a
    ``?rule`` with one child is that child, any other rule calls its ToAst method."""
    name = _callback_name(rule)
    size = len(rule.expansion)
    keep_all = name in KEEP_TOKEN_RULES
    plan = []
    for i, sym in enumerate(rule.expansion):
        spliced = not sym.is_term and sym.name.startswith("_")
        if spliced and keep_all:
            raise ValueError(f"rule {name!r} keeps its tokens and inlines {sym.name!r}")
        if not sym.is_term or keep_all or sym.name in VALUE_TOKENS:
            plan.append((i, spliced))
    origin = rule.origin.name
    whole = len(plan) == size and not any(spliced for _, spliced in plan)
    if rule.options.expand1 and not rule.alias and size == 1 and not plan[0][1]:
        return _Rule(PASS, size, origin, whole, tuple(plan), None)
    if name.startswith("_"):
        return _Rule(SPLICE, size, origin, whole, tuple(plan), None)
    return _Rule(BUILD, size, origin, whole, tuple(plan), getattr(ToAst, name))


_new_str = str.__new__


def make_token(kind: str, value: str, start: int, line: int, col: int, end_line: int,
               end_col: int, end: int) -> Token:
    """``Token(kind, value, start, line, col, end_line, end_col, end)``, minus Lark's
    keyword-argument handling."""
    tok = _new_str(Token, value)
    tok.type, tok.value, tok.start_pos, tok.end_pos = kind, value, start, end
    tok.line, tok.column, tok.end_line, tok.end_column = line, col, end_line, end_col
    return tok


def fast_parse(t: Tables, text: str, path: str,
               start: str = "start") -> tuple[Any, list[Token]] | None:
    """Parse valid ``text``: ``(value of the start rule, comment tokens)``; None at the
    first error (parse again with Lark to describe it).

    One function on purpose: lexing, shifting and reducing inline (no call per token
    or per reduction) is what makes this loop several times faster than Lark's.
    """
    actions, rules, kept = t.actions, t.rules, t.kept_tokens
    keywords, punct, collected = t.keywords, t.punct, t.collected
    match, end_state = t.regex.match, t.end_states[start]
    builder, node_type, no_span = ToAst(path), ast.Node, ast.NO_SPAN
    states = [t.start_states[start]]
    values: list[Any] = []
    poss: list[Pos] = []
    depths: list[int] = []  # AST depth of each value: nodes inside nodes, lists are flat
    comments: list[Token] = []
    pos, line, line_start, n = 0, 1, 0, len(text)
    while True:
        # ---- the next token: (kind, token or None, position); "$END" after the last
        m = match(text, pos) if pos < n else None
        if m is not None:
            kind = m.lastgroup
            value = m.group(kind)
            end = m.end()
            begin = end - len(value)
            if begin != pos:  # whitespace before the token
                newlines = text.count("\n", pos, begin)
                if newlines:
                    line += newlines
                    line_start = text.rindex("\n", pos, begin) + 1
            end_line, end_line_start = line, line_start
            if kind in _MULTILINE and "\n" in value:
                end_line = line + value.count("\n")
                end_line_start = begin + value.rindex("\n") + 1
            if kind == "NAME":
                word = keywords.get(value)
                if word is not None:
                    row = actions[states[-1]]
                    if word in row or "NAME" not in row:
                        kind = word
            elif kind == "PUNCT":
                kind = punct[value]
            elif kind == "STRING" and value == '""' and text.startswith('"""', begin):
                return None  # an unterminated docstring
            col, end_col = begin - line_start + 1, end - end_line_start + 1
            start_line = line
            pos, line, line_start = end, end_line, end_line_start
            if kind in collected:
                comments.append(make_token(kind, value, begin, start_line, col, end_line,
                                           end_col, end))
                continue
            token = (make_token(kind, value, begin, start_line, col, end_line, end_col, end)
                     if kind in kept else None)
            tpos: Pos = (start_line, col, end_line, end_col)
        elif pos < n and text[pos:].strip(" \t\r\n\f"):
            return None  # a character no token starts with
        else:
            kind, token, tpos = "$END", None, None
        # ---- reduce what the token ends, then shift it
        while True:
            code = actions[states[-1]].get(kind)
            if code is None:
                return None
            if code >= 0:
                if token is None and kind == "$END":
                    return None
                states.append(code)
                values.append(token)
                poss.append(tpos)
                depths.append(0)
                break
            kind_r, size, origin, whole, plan, method = rules[~code]
            if kind_r == PASS:  # the child stays; only the state changes
                states[-1] = actions[states[-2]][origin]
                if kind == "$END" and states[-1] == end_state:
                    return values[-1], comments
                continue
            if size == 1:  # the most common case: replace the top entry in place
                out = [values[-1]] if whole else _gather(plan, [values[-1]])
                rpos = poss[-1]
                depth = depths[-1]
            elif size:
                children, cposs = values[-size:], poss[-size:]
                depth = max(depths[-size:])
                del states[-size:], values[-size:], poss[-size:], depths[-size:]
                out = children if whole else _gather(plan, children)
                first, last = cposs[0], cposs[-1]
                rpos = ((first[0], first[1], last[2], last[3])
                        if first is not None and last is not None else _span_of(cposs))
            else:
                out, rpos, depth = [], None, 0
            if kind_r == BUILD:
                depth += 1
                if depth > MAX_DEPTH:
                    where = rpos or tpos or (start_line, 1, start_line, 1)
                    raise TooDeep(path, where[0], where[1])
                out = method(builder, rpos, out)
                if isinstance(out, node_type):  # a method may return a child node
                    span = out.span
                    rpos = (None if span is no_span else
                            (span.line, span.col, span.end_line, span.end_col))
            if size == 1:
                states[-1] = actions[states[-2]][origin]
                values[-1], poss[-1], depths[-1] = out, rpos, depth
            else:
                states.append(actions[states[-1]][origin])
                values.append(out)
                poss.append(rpos)
                depths.append(depth)
            if kind == "$END" and states[-1] == end_state:
                return values[-1], comments


def _gather(plan: tuple[tuple[int, bool], ...], children: list) -> list:
    """The value children of a rule, with inlined (``_rule``) children spliced in."""
    out: list | None = None
    for i, spliced in plan:
        if spliced:
            if out is None:
                out = children[i]  # reuse the list: repetitions are left-recursive
            else:
                out.extend(children[i])
        elif out is None:
            out = [children[i]]
        else:
            out.append(children[i])
    return [] if out is None else out


def _span_of(cposs: list[Pos]) -> Pos:
    """From the start of the first positioned child to the end of the last one."""
    first = last = None
    for p in cposs:
        if p is not None:
            first = p
            break
    for p in reversed(cposs):
        if p is not None:
            last = p
            break
    if first is None or last is None:
        return None
    return (first[0], first[1], last[2], last[3])
