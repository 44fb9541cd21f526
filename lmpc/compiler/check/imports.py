"""Reading the root file and everything it imports, in dependency order.

Import paths are relative to the importing file. Each file is read and parsed once
(a diamond of imports is fine); a file that imports one of the files currently being
imported is a cycle (E1002). Files come out imports-first, so a duplicate definition
is reported at the later, importing file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from lmpc.compiler.check.scope import Scope, SourceText
from lmpc.files import SOURCE_LIMIT, FileProblem, read_text
from lmpc.grammar import ast
from lmpc.grammar.parser import parse
from lmpc.ir import Span

MAX_IMPORT_DEPTH = 64  # a chain of imports deeper than this is refused (E1004)
MAX_FILES = 2000  # files in one program


@dataclass
class LoadedFile:
    """One parsed source file."""

    path: str  # as shown to the user (joined from the root path, normalized)
    text: str
    tree: ast.File
    sha256: str


@dataclass
class _Loader:
    scope: Scope
    files: list[LoadedFile]
    done: set[str]
    stack: list[str]
    syntax_errors: bool = False

    def visit(self, path: str, text: str | None, via: ast.Import | None) -> None:
        key = os.path.realpath(path)
        if key in self.stack:
            self._cycle(path, key, via)
            return
        if key in self.done:
            return
        if len(self.stack) >= MAX_IMPORT_DEPTH or len(self.done) >= MAX_FILES:
            span = via.span if via is not None else Span(file=path, line=1, col=1)
            what = (f"imports nested more than {MAX_IMPORT_DEPTH} files deep"
                    if len(self.stack) >= MAX_IMPORT_DEPTH else
                    f"more than {MAX_FILES} files imported")
            self.scope.error("E1004", what, span, "import the shared files from the root")
            self.syntax_errors = True  # what was read is incomplete: do not analyse it
            return
        self.done.add(key)
        if text is None:
            text = self._read(path, via)
            if text is None:
                return
        self.scope.sources[path] = SourceText(text)
        tree, diags = parse(text, path)
        if tree is None:
            self.syntax_errors = True
            self.scope.diagnostics.extend(diags)
            return
        self.stack.append(key)
        for imp in tree.of_type(ast.Import):
            target = os.path.normpath(os.path.join(os.path.dirname(path), imp.path))
            self.visit(target, None, imp)
        self.stack.pop()
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.files.append(LoadedFile(path, text, tree, digest))

    def _read(self, path: str, via: ast.Import | None) -> str | None:
        span = via.span if via is not None else Span(file=path, line=1, col=1)
        if not os.path.lexists(path):
            what = f"imported file '{path}' not found" if via else f"file '{path}' not found"
            self.scope.error("E1001", what, span, _near(path))
            return None
        if os.path.isdir(path):
            self.scope.error("E1001", f"'{path}' is a directory, not a .lmp file", span)
            return None
        try:
            return read_text(path, SOURCE_LIMIT)
        except FileProblem as exc:
            if exc.line:  # bad bytes: point at them in the file itself
                span = Span(file=path, line=exc.line, col=exc.col)
            self.scope.error("E1003", f"cannot read '{path}': {exc}", span)
        return None

    def _cycle(self, path: str, key: str, via: ast.Import | None) -> None:
        start = self.stack.index(key)
        chain = [os.path.basename(k) for k in self.stack[start:]] + [os.path.basename(key)]
        span = via.span if via is not None else Span(file=path, line=1, col=1)
        self.scope.error("E1002", "import cycle: " + " -> ".join(chain), span,
                         "move the shared declarations into a file both can import")


def _near(path: str) -> str | None:
    """A did-you-mean among the .lmp files beside a missing one."""
    from lmpc.diagnostics import suggest

    folder = os.path.dirname(path) or "."
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".lmp")]
    except OSError:
        return None
    return suggest(os.path.basename(path), names)


def load_files(path: str, text: str | None, scope: Scope) -> tuple[list[LoadedFile], bool]:
    """Parse ``path`` (given ``text``, or read from disk) and its imports.

    Returns the files imports-first and whether any had a syntax error (then
    semantic analysis is skipped: its errors would only echo the syntax errors).
    """
    loader = _Loader(scope, [], set(), [])
    loader.visit(path, text, None)
    return loader.files, loader.syntax_errors
