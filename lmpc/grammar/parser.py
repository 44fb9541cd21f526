"""``parse(text, path)``: source text -> AST plus syntax diagnostics. Never raises.

The Lark parser is built once per process (LALR, positions kept; the tokenizer is
:mod:`lmpc.grammar.lexer`). Valid files are parsed by :mod:`lmpc.grammar.driver`, a
fast loop over Lark's parse table; a file with a syntax error is parsed again by Lark
itself, which is what the error reports below are made from.
Comments are collected through a lexer callback into a per-call list so the formatter
can put them back. After a syntax error the parser resumes at the next line that
starts with a top-level keyword, so one run reports several errors:

>>> tree, diags = parse('lm fast = "openai/gpt-4o-mini"\\nenum P { low high }', "a.lmp")
>>> [type(d).__name__ for d in tree.decls], diags
(['LMDecl', 'EnumDecl'], [])
>>> tree, diags = parse("enum P { low, }\\nclas X {}\\nmodule M( -> () {}", "b.lmp")
>>> tree is None, [(d.code, d.span.line, d.span.col) for d in diags]
(True, [('E0001', 2, 1), ('E0001', 3, 11)])
>>> diags[0].hint
"did you mean 'class'?"
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gc
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from lmpc.diagnostics import Diagnostic, suggest
from lmpc.grammar import ast
from lmpc.grammar.driver import fast_parse, tables
from lmpc.grammar.lexer import LmpLexer
from lmpc.grammar.sigstring import expand_string_signatures
from lmpc.grammar.transformer import CURRENT_PATH, SourceLimit, lark_callbacks, make_span
from lmpc.ir import Span

log = logging.getLogger("lmpc")

GRAMMAR_PATH = Path(__file__).with_name("lmp.lark")
MAX_ERRORS = 20

# Keywords that open a top-level declaration (recovery resumes at one of them).
DECL_KEYWORDS = (
    "import", "lm", "enum", "class", "type", "signature", "tool", "module", "dataset",
    "metric", "optimize", "test",
)
_DECL_LINE = re.compile(r"^(?:{})\b".format("|".join(DECL_KEYWORDS)), re.M)
_BLOCK_NAMES = {kw.upper(): kw for kw in DECL_KEYWORDS}
_OPENERS = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}

# Per-call sink for comments seen by the lexer (the Lark object is shared).
_COMMENTS: contextvars.ContextVar[list[Token] | None] = contextvars.ContextVar(
    "lmpc_comments", default=None
)


def _keep_comment(token: Token) -> Token:
    sink = _COMMENTS.get()
    if sink is not None:
        sink.append(token)
    return token


_OPTIONS = dict(parser="lalr", lexer=LmpLexer, propagate_positions=True,
                maybe_placeholders=False, start=["start", "type"],
                lexer_callbacks={"COMMENT": _keep_comment})


@functools.cache
def get_lark() -> Lark:
    """The process-wide parser, built once.

    It builds the AST while parsing (Lark's tree-less LALR mode, with every token kept
    so that spans include keywords and brackets); no parse tree is made.
    """
    callbacks = lark_callbacks()
    # cache=True: Lark keeps the analysed tables in the temp dir, keyed by the grammar's
    # hash; a CLI run then starts in ~0.07 s instead of ~0.5 s (measured here).
    lark = Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), keep_all_tokens=True,
                transformer=callbacks, cache=True, **_OPTIONS)
    # A rule without a callback would make Lark build a tree node instead of an AST
    # node; only `_rule`s and single-child `?rule`s may lack one.
    for rule in lark.rules:
        name = str(rule.alias or rule.origin.name)
        passthrough = rule.options.expand1 and len(rule.expansion) == 1 and not rule.alias
        if not name.startswith("_") and not passthrough and not hasattr(callbacks, name):
            raise LookupError(f"grammar rule {name!r} has no ToAst method")
    return lark


def parse(text: str, path: str) -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse one file. Returns ``(File, [])`` or ``(None, diagnostics)``; never raises."""
    try:
        with gc_paused():
            return _parse(text, path)
    except Exception as exc:  # a bug in lmpc must still not give the user a traceback
        log.debug("internal parser error on %s", path, exc_info=True)
        span = Span(file=path, line=1, col=1, end_line=1, end_col=2)
        return None, [Diagnostic("E0000", f"internal parser error: {exc!r}", span)]


def parse_type(text: str, path: str) -> ast.TypeExpr:
    """Parse a type expression alone (raises ``LarkError`` on a bad one)."""
    fast = fast_parse(tables(get_lark()), text, path, start="type")
    if fast is not None:
        return fast[0]
    reset = CURRENT_PATH.set(path)
    try:
        return get_lark().parse(text, start="type")
    finally:
        CURRENT_PATH.reset(reset)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC around a parse or a check.

    They allocate a great many small acyclic objects: collections triggered along the
    way cost a third of the time on big files. When the outermost pause ends, what was
    built (the AST, the IR) is moved straight to the oldest generation, as if it had
    survived the young collections: otherwise the very next allocation would walk every
    one of those objects (another 50 ms on a 5,000-line file). Nothing is leaked: a
    full collection still sees them. Skipped when someone else froze objects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()  # freeze + unfreeze: young generations -> oldest, counts reset
                gc.unfreeze()
            gc.enable()


def _parse(text: str, path: str) -> tuple[ast.File | None, list[Diagnostic]]:
    try:
        fast = fast_parse(tables(get_lark()), text, path)
        if fast is not None:
            file, comments = fast
            diags: list[Diagnostic] = []
        else:
            file, diags, comments = _parse_with_lark(text, path)
    except SourceLimit as limit:
        hint = "split it into named parts (a type alias, a step)" \
            if limit.code == "E0006" else None
        return None, [Diagnostic(limit.code, limit.message,
                                 _point(path, limit.line, limit.col), hint)]
    if file is None or diags:
        return None, diags
    file.path = path
    file.comments = [
        ast.Comment(text=str(t), span=make_span(path, t.line, t.column, t.end_line,
                                                t.end_column))
        for t in comments
    ]
    diags = expand_string_signatures(file, path, parse_type)
    return (None, diags) if diags else (file, [])


def lark_parse(text: str, path: str) -> tuple[ast.File, list[Token]]:
    """Parse with Lark's own parser: the reference the fast driver is tested against.

    Returns the tree and the comment tokens; raises ``LarkError`` on a syntax error.
    """
    comments: list[Token] = []
    reset, reset_path = _COMMENTS.set(comments), CURRENT_PATH.set(path)
    try:
        return get_lark().parse(text, start="start"), comments
    finally:
        _COMMENTS.reset(reset)
        CURRENT_PATH.reset(reset_path)


def _parse_with_lark(text: str,
                     path: str) -> tuple[ast.File | None, list[Diagnostic], list[Token]]:
    """The slow path, for files with syntax errors: Lark's parser, with recovery."""
    comments: list[Token] = []
    reset, reset_path = _COMMENTS.set(comments), CURRENT_PATH.set(path)
    try:
        file, diags = _parse_with_recovery(text, path)
    finally:
        _COMMENTS.reset(reset)
        CURRENT_PATH.reset(reset_path)
    return file, diags, comments


def _parse_with_recovery(text: str, path: str) -> tuple[ast.File | None, list[Diagnostic]]:
    lark = get_lark()
    diags: list[Diagnostic] = []
    source, resumed_at = text, 0
    while True:
        try:
            return lark.parse(source, start="start"), diags
        except UnexpectedInput as err:
            diag, fatal = _diagnose(err, source, path)
            diags.append(diag)
            resume = None if fatal else _resume_point(text, err, resumed_at)
            if resume is None or len(diags) >= MAX_ERRORS:
                return None, diags
            source, resumed_at = _mask_before(text, resume), resume
        except LarkError as err:  # defensive: any other Lark failure is one diagnostic
            diags.append(Diagnostic("E0001", str(err).splitlines()[0], _point(path, 1, 1)))
            return None, diags


def _mask_before(text: str, pos: int) -> str:
    """Blank out text[:pos] but keep its newlines, so positions stay right."""
    return re.sub(r"[^\n]", " ", text[:pos]) + text[pos:]


def _resume_point(text: str, err: UnexpectedInput, after: int) -> int | None:
    """Where to restart: the failing token if it starts a declaration, else the next one."""
    pos = _error_pos(err, text)
    line_start = text.rfind("\n", 0, pos) + 1
    if pos == line_start and _DECL_LINE.match(text, pos) and pos > after:
        return pos
    m = _DECL_LINE.search(text, text.find("\n", pos) + 1 if "\n" in text[pos:] else len(text))
    if m is None or m.start() <= after or "\n" not in text[pos:]:
        return None
    return m.start()


def _error_pos(err: UnexpectedInput, text: str) -> int:
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        return len(text)
    pos = getattr(err, "pos_in_stream", None)
    if pos is None and isinstance(err, UnexpectedToken):
        pos = err.token.start_pos
    return pos if isinstance(pos, int) else len(text)


def _point(path: str, line: int, col: int, width: int = 1) -> Span:
    return Span(file=path, line=line, col=col, end_line=line, end_col=col + width)


def _eof_span(text: str, path: str) -> Span:
    """Just after the last non-blank character (so the caret shows a real line)."""
    body = text.rstrip()
    line = body.count("\n") + 1
    col = len(body) - (body.rfind("\n") + 1) + 1
    return _point(path, line, col)


# ------------------------------------------------------------------ describing errors


def _diagnose(err: UnexpectedInput, text: str, path: str) -> tuple[Diagnostic, bool]:
    """A Diagnostic for one Lark error, and whether parsing cannot usefully go on."""
    if isinstance(err, UnexpectedCharacters):
        return _bad_character(err, text, path)
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(err, text, path)
    if isinstance(err, UnexpectedEOF):
        return Diagnostic("E0002", "unexpected end of file", _eof_span(text, path)), True
    return Diagnostic("E0001", "syntax error", _point(path, 1, 1)), True


def _bad_character(err: UnexpectedCharacters, text: str, path: str) -> tuple[Diagnostic, bool]:
    pos, line, col = err.pos_in_stream, err.line, err.column
    rest_of_line = text[pos:].split("\n", 1)[0]
    where = _open_block_at(text, pos)
    suffix = f" ({where})" if where else ""
    if text.startswith('"""', pos):
        msg = f"unterminated docstring: no closing '\"\"\"'{suffix}"
        return Diagnostic("E0002", msg, _point(path, line, col, 3)), True
    if text.startswith('"', pos):
        msg = f"unterminated string: a string must end with '\"' on the same line{suffix}"
        hint = 'use """...""" for text over several lines'
        return Diagnostic("E0002", msg, _point(path, line, col, len(rest_of_line)), hint), False
    if text.startswith("/*", pos):
        msg = "unterminated block comment: no closing '*/'"
        return Diagnostic("E0002", msg, _point(path, line, col, 2)), True
    char = text[pos] if pos < len(text) else ""
    hint = {"'": "strings use double quotes", "#": "comments start with //",
            ";": "statements end at the end of the line; remove ';'"}.get(char)
    msg = f"invalid character {char!r}{suffix}"
    return Diagnostic("E0003", msg, _point(path, line, col), hint), False


def _unexpected_token(err: UnexpectedToken, text: str, path: str) -> tuple[Diagnostic, bool]:
    tok = err.token
    expected = _describe_expected(err.expected)
    stack = _value_stack(err)
    where = _open_block(stack)
    if tok.type == "$END":
        closer = _innermost_closer(stack)
        if where and closer:
            msg = f"unexpected end of file: {where} is not closed (expected {closer!r})"
            return Diagnostic("E0002", msg, _eof_span(text, path)), True
        msg = f"unexpected end of file, expected {expected}"
        msg += f" (in {where})" if where else ""
        return Diagnostic("E0001", msg, _eof_span(text, path)), True
    if tok.type == "STRING" and text.startswith('"""', tok.start_pos or 0):
        msg = "unterminated docstring: no closing '\"\"\"'"
        msg += f" (in {where})" if where else ""
        return Diagnostic("E0002", msg, _point(path, tok.line, tok.column, 3)), True
    if tok.type == "SQSTRING":  # single quotes are only for literals inside a type
        msg = "invalid character \"'\"" + (f" (in {where})" if where else "")
        hint = ("strings use double quotes (single quotes only in a type, as in "
                "Literal['a', 'b'])")
        return Diagnostic("E0003", msg, _point(path, tok.line, tok.column), hint), False
    msg = f"unexpected {_describe_token(tok)}, expected {expected}"
    if where:
        msg += f" (in {where})"
    width = max(len(str(tok)), 1) if tok.end_line == tok.line else 1
    hint = _token_hint(tok, err.expected) or _kind_hint(stack)
    return Diagnostic("E0001", msg, _point(path, tok.line, tok.column, width), hint), False


def _value_stack(err: UnexpectedToken) -> list:
    parser = getattr(err, "interactive_parser", None)
    state = getattr(parser, "parser_state", None)
    return list(getattr(state, "value_stack", []) or [])


def _open_block(stack: list) -> str | None:
    """``module 'Support' opened at 12:1`` for the innermost unfinished declaration."""
    for i in range(len(stack) - 1, -1, -1):
        item = stack[i]
        if isinstance(item, Token) and item.type in _BLOCK_NAMES:
            name_tok = stack[i + 1] if i + 1 < len(stack) else None
            name = f" {str(name_tok)!r}" if isinstance(name_tok, Token) else ""
            if isinstance(name_tok, Token) and name_tok.type == "STRING":
                name = f" {name_tok}"
            return f"{_BLOCK_NAMES[item.type]}{name} opened at {item.line}:{item.column}"
    return None


def _innermost_closer(stack: list) -> str | None:
    for item in reversed(stack):
        if isinstance(item, Token) and item.type in _OPENERS:
            return _OPENERS[item.type]
    return None


def _open_block_at(text: str, pos: int) -> str | None:
    """The open block at ``pos``: parse the text before it and read the parser stack."""
    try:
        get_lark().parse(text[:pos], start="start")
    except UnexpectedToken as err:
        return _open_block(_value_stack(err)) if err.token.type == "$END" else None
    except LarkError:
        return None
    return None


_TERMINAL_WORDS = {
    "NAME": "a name", "STRING": "a string", "NUMBER": "a number", "DOCSTRING": "a docstring",
    "$END": "end of file",
}


def _describe_expected(names: set[str]) -> str:
    lark = get_lark()
    words = set()
    for name in names:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = lark.get_terminal(name).pattern
        except KeyError:
            words.add(name)
            continue
        words.add(repr(pattern.value) if pattern.type == "str" else name.lower())
    ordered = sorted(words, key=lambda w: (not w.startswith("'"), w))
    if len(ordered) > 8:
        ordered = ordered[:8] + ["..."]
    return ordered[0] if len(ordered) == 1 else "one of " + ", ".join(ordered)


def _describe_token(tok: Token) -> str:
    value = str(tok)
    if tok.type == "NAME":
        return f"name {value!r}"
    if tok.type == "STRING":
        return f"string {value}"
    if tok.type == "NUMBER":
        return f"number {value}"
    if tok.type == "DOCSTRING":
        return "docstring"
    return repr(value)


def _kind_hint(stack: list) -> str | None:
    """``t = chain_of_thougt Sig(...)``: the name before the error is a misspelled kind."""
    last = stack[-1] if stack else None
    if isinstance(last, Token) and last.type == "NAME" and len(stack) >= 2:
        before = stack[-2]
        if isinstance(before, Token) and before.type == "EQUAL":
            return suggest(str(last), ast.PREDICTOR_KINDS + ("retrieve",))
    return None


def _token_hint(tok: Token, expected: set[str]) -> str | None:
    """A did-you-mean for a misspelled keyword in a place that expects keywords."""
    if tok.type != "NAME":
        return None
    lark = get_lark()
    keywords = []
    for name in expected:
        try:
            pattern = lark.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str" and pattern.value.isidentifier():
            keywords.append(pattern.value)
    return suggest(str(tok), keywords) if keywords else None
