"""Checking a reply against the GBNF grammar its request was sent with.

A model told to follow a grammar (llama.cpp, the embedded model) should answer inside it;
a reply that does not — a server that ignored the grammar, a proxy that rewrote or cut
the body — is a fault of the transport, not an answer: the LM layer retries it and never
caches it. The grammar (the subset lmpc writes: literals, character classes, groups,
``|``, ``? * +``, ``{m,n}``, rule references) is translated to a Lark grammar once and
parsed with Lark's Earley parser, which also tells a reply that was merely cut short
(a prefix of the language: ``PREFIX``) from one that left it (``VIOLATION``).

>>> g = compile_gbnf('root ::= " "? ( "high" | "low" ) "\\\\n"?')
>>> [g.check(t) for t in (" high", " hi", " medium")]
['complete', 'prefix', 'violation']
"""

from __future__ import annotations

import functools
import json
import re
import threading
from typing import Literal

from lark import Lark
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF
from lark.lexer import PatternStr

Verdict = Literal["complete", "prefix", "violation"]
MAX_REPLY = 200_000  # characters checked; a longer reply is not held to its grammar


class GrammarSyntaxError(ValueError):
    """A grammar this checker cannot read (lmpc never writes one)."""


_TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<cls>\[(?:\\.|[^\]\\])*\])
  | (?P<repeat>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<name>[A-Za-z][A-Za-z0-9_-]*)
  | (?P<op>[()|?*+])
''', re.VERBOSE)
_RULE_START = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s*::=(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "[": "[", "]": "]",
            "/": "/", "-": "-"}


class CompiledCheck:
    """One grammar, ready to check replies against (thread-safe)."""

    def __init__(self, parser: Lark) -> None:
        self._parser = parser
        self._lock = threading.Lock()  # Earley parsers keep state while parsing

    def check(self, text: str) -> Verdict:
        if len(text) > MAX_REPLY:
            return "complete"
        with self._lock:
            try:
                self._parser.parse(text)
            except UnexpectedEOF:
                return "prefix"
            except UnexpectedCharacters as exc:
                return "prefix" if self._cut_short(text, exc) else "violation"
            except LarkError:
                return "violation"
        return "complete"

    def _cut_short(self, text: str, exc: UnexpectedCharacters) -> bool:
        """Did the text end inside a token the grammar allowed there (``" hi"`` of
        ``"high"``), rather than leave the grammar?"""
        rest = text[exc.pos_in_stream:]
        if not rest:
            return True
        for name in exc.allowed or ():
            try:
                pattern = self._parser.get_terminal(name).pattern
            except KeyError:
                continue
            if isinstance(pattern, PatternStr) and pattern.value.startswith(rest):
                return True
        return False


@functools.lru_cache(maxsize=256)
def compile_gbnf(grammar: str) -> CompiledCheck:
    """A checker for ``grammar`` (cached: a program sends few distinct grammars)."""
    rules = _rules(grammar)
    if "root" not in rules:
        raise GrammarSyntaxError("the grammar has no root rule")
    lines = [f"{_rule_name(name)}: {_body(body)}" for name, body in rules.items()]
    lines.insert(0, f"start: {_rule_name('root')}")
    try:
        parser = Lark("\n".join(lines), parser="earley", lexer="dynamic", start="start",
                      ambiguity="resolve")
    except LarkError as exc:
        raise GrammarSyntaxError(f"cannot read the grammar: {exc}") from None
    return CompiledCheck(parser)


def check_reply(grammar: str, text: str) -> Verdict:
    return compile_gbnf(grammar).check(text)


def _rules(grammar: str) -> dict[str, str]:
    rules: dict[str, str] = {}
    current = None
    for line in grammar.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _RULE_START.match(line)
        if match:
            current = match.group(1)
            if current in rules:
                raise GrammarSyntaxError(f"rule {current!r} is defined twice")
            rules[current] = match.group(2)
        elif current is not None:
            rules[current] += " " + line
        else:
            raise GrammarSyntaxError(f"not a rule: {line[:60]!r}")
    return rules


def _rule_name(name: str) -> str:
    return "r_" + name.lower().replace("-", "_")


def _body(body: str) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None:
            raise GrammarSyntaxError(f"cannot read {body[pos:pos + 20]!r}")
        pos = match.end()
        kind, text = match.lastgroup, match.group()
        if kind == "ws":
            continue
        if kind == "string":
            value = _unescape(text[1:-1])
            out.append(json.dumps(value) if value else '""')
        elif kind == "cls":
            # a repeated class becomes one regex terminal: char-by-char Earley items were
            # most of the time (lmpc's grammars never follow one with a char it allows)
            after = _TOKEN.match(body, pos)
            quantifier = ""
            if after and (after.lastgroup == "repeat" or after.group() in ("*", "+")):
                quantifier, pos = after.group().replace(" ", ""), after.end()
            out.append(_class_terminal(text, quantifier))
        elif kind == "repeat":
            out.append(_repeat(text, out))
        elif kind == "name":
            out.append(_rule_name(text))
        else:
            out.append(text)
    return " ".join(out) or '""'


def _class_terminal(cls: str, quantifier: str) -> str:
    """A character class, with its repetition, as a Lark regex terminal (never empty)."""
    regex = cls.replace("/", "\\/")
    if not quantifier:
        return f"/{regex}/"
    if quantifier == "+":
        return f"/{regex}+/"
    if quantifier == "*":
        return f"(/{regex}+/)?"
    low, comma, high = quantifier[1:-1].partition(",")
    low_n = int(low)
    if not comma:
        high = low
    bound = f"{{{max(low_n, 1)},{high}}}"
    terminal = f"/{regex}{bound}/"
    return f"({terminal})?" if low_n == 0 else terminal


def _repeat(text: str, out: list[str]) -> str:
    """``x{m,n}`` -> Lark's ``x ~ m..n`` (the item before it is a single token or a group)."""
    inner = text[1:-1].replace(" ", "")
    low, comma, high = inner.partition(",")
    if not comma:
        return f"~ {low}"
    if high:
        return f"~ {low}..{high}"
    # {m,}: m copies then any number more
    item = _last_item(out)
    return f"~ {low} {item}*" if item else f"~ {low}"


def _last_item(out: list[str]) -> str:
    if not out:
        return ""
    if out[-1] != ")":
        return out[-1]
    depth = 0
    for i in range(len(out) - 1, -1, -1):
        depth += out[i] == ")"
        depth -= out[i] == "("
        if depth == 0:
            return " ".join(out[i:])
    return ""


def _unescape(text: str) -> str:
    chars: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            chars.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "x":
            chars.append(chr(int(text[i + 2:i + 4], 16)))
            i += 4
        elif nxt == "u":
            chars.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
        else:
            chars.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(chars)
