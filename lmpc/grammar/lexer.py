"""The tokenizer Lark's LALR parser pulls from (a custom Lark ``Lexer``).

Why not Lark's contextual lexer: it matches a keyword as a prefix of a longer word
when only keywords fit (``lmfast = "m"`` lexed as ``lm fast``), and it took about a
third of the parse time on big files. This lexer reads whole words with one master
regex; a word is a keyword only where the parser's current state accepts that keyword
(so ``in``, ``on``, ``with`` ... stay usable as names elsewhere). Terminal names and
patterns come from ``lmp.lark`` itself, and the ``COMMENT`` lexer callback is honoured,
so the grammar file stays the single definition of the language.

Lark drives this lexer only for files with syntax errors (its error reports are the
best); :mod:`lmpc.grammar.driver` parses valid files with the same token rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer, LexerState

# Regex terminals of lmp.lark, in the order they are tried (first match wins).
_REGEX_ORDER = ("WS", "COMMENT", "DOCSTRING", "STRING", "SQSTRING", "NUMBER", "NAME")
_MULTILINE = frozenset({"WS", "COMMENT", "DOCSTRING"})


def word_tables(terminals: list[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Keywords (``{"module": "MODULE"}``) and operators (``{"->": "__ANON_0"}``) of
    the grammar's string terminals."""
    keywords: dict[str, str] = {}
    punct: dict[str, str] = {}
    for t in terminals:
        if t.pattern.type == "str":
            target = keywords if t.pattern.value.isidentifier() else punct
            target[t.pattern.value] = t.name
    return keywords, punct


def token_regex(terminals: list[Any], skip_space: bool = False) -> re.Pattern[str]:
    """One regex for every token: a named group per regex terminal (tried in
    ``_REGEX_ORDER``) and ``PUNCT`` for the operators, longest first. With
    ``skip_space`` the whitespace before a token is part of the match (not a group)."""
    by_name = {t.name: t for t in terminals}
    _, punct = word_tables(terminals)
    names = [n for n in _REGEX_ORDER if n in by_name and not (skip_space and n == "WS")]
    parts = [f"(?P<{n}>{by_name[n].pattern.to_regexp()})" for n in names]
    ordered = sorted(punct, key=len, reverse=True)  # longest operator first
    parts.append("(?P<PUNCT>" + "|".join(re.escape(p) for p in ordered) + ")")
    body = "|".join(parts)
    if skip_space:
        body = f"(?:{by_name['WS'].pattern.to_regexp()})?+(?:{body})"
    return re.compile(body)


class LmpLexer(Lexer):
    """Master-regex lexer with parser-state-aware keywords (see module docstring)."""

    __future_interface__ = 2  # Lark passes (lexer_state, parser_state) to lex()

    def __init__(self, lexer_conf: Any) -> None:
        self.keywords, self.punct = word_tables(lexer_conf.terminals)
        self.master = token_regex(lexer_conf.terminals)
        self.ignore = set(lexer_conf.ignore)
        self.callbacks = dict(lexer_conf.callbacks)

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text = lexer_state.text.text
        pos, end = lexer_state.text.start, lexer_state.text.end
        line, line_start = 1, 0
        match = self.master.match
        states = parser_state.parse_conf.states if parser_state is not None else None
        while pos < end:
            m = match(text, pos)
            if m is None:
                raise UnexpectedCharacters(text, pos, line, pos - line_start + 1,
                                           state=parser_state)
            kind, value = m.lastgroup, m.group()
            if kind == "STRING" and value == '""' and text.startswith('"""', pos):
                # an unterminated docstring, not an empty string followed by a quote
                raise UnexpectedCharacters(text, pos, line, pos - line_start + 1,
                                           state=parser_state)
            if kind == "PUNCT":
                kind = self.punct[value]
            elif kind == "NAME" and value in self.keywords:
                kind = self._word_kind(value, states, parser_state)
            end_line, end_line_start = line, line_start
            if kind in _MULTILINE and "\n" in value:  # only these can span lines
                end_line = line + value.count("\n")
                end_line_start = pos + value.rindex("\n") + 1
            if kind in self.ignore and kind not in self.callbacks:
                pos, line, line_start = m.end(), end_line, end_line_start
                continue  # whitespace: no token to build
            tok = Token(kind, value, pos, line, pos - line_start + 1, end_line,
                        m.end() - end_line_start + 1, m.end())
            if kind in self.callbacks:
                tok = self.callbacks[kind](tok)
            if kind not in self.ignore:
                yield tok
            pos, line, line_start = m.end(), end_line, end_line_start

    def _word_kind(self, word: str, states: Any, parser_state: Any) -> str:
        """The keyword's terminal where the parser accepts it, else NAME."""
        keyword = self.keywords[word]
        if states is None:
            return keyword
        accepts = states[parser_state.position]
        if keyword in accepts or "NAME" not in accepts:
            return keyword
        return "NAME"
