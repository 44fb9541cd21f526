"""Semantic analysis: ``.lmp`` files -> a checked :class:`~lmpc.ir.ProgramIR`.

:func:`load_program` parses the root file and its imports, merges their declarations,
resolves every name, checks types along the dataflow of each module, checks datasets,
metrics, optimizer pipelines and tests, and builds the IR. Errors are collected and
reported together (at most 50), each with a stable code, a span and, where a name is
close, a did-you-mean.

>>> ir, diags, _ = check_text('''
... signature QA = "question -> answer"
... module M(question: str) -> (answer: str) {
...   a = predict QA(question = question)
...   return (answer = a.answer)
... }''', "qa.lmp")
>>> diags, list(ir.predictors), ir.modules["M"].returns["answer"].path
([], ['M.a'], ['a', 'answer'])
>>> _, diags, _ = check_text('signature S = "q -> a"\\nmodule M(q: str) -> () {\\n'
...                          '  x = predict Ss(q = q)\\n}', "m.lmp")
>>> [(d.code, d.span.line, d.span.col, d.hint) for d in diags]
[('E1202', 3, 15, "did you mean 'S'?")]

Codes (E0xxx are syntax errors, from the parser; see ``lmpc.diagnostics``):

=======  ==============================================================================
code     meaning
=======  ==============================================================================
E1001    file not found (the root file or an import; paths are relative to the importer)
E1002    import cycle
E1003    file cannot be read (permissions, not UTF-8, not a regular file, over 8 MB)
E1004    imports nested more than 64 files deep, or more than 2,000 files
E1099    too many errors; analysis stopped after 50
E1101    duplicate definition (declaration, module step, test name, built-in type name,
         optimize block name)
E1102    duplicate member (field, parameter, option, argument, enum value)
E1104    type alias refers to itself
E1201    unknown LM (also an optimizer parameter naming an LM, role or module)
E1202    unknown signature
E1203    unknown module (or module/tool in a call step)
E1204    unknown tool
E1205    unknown type, or wrong type arguments (``list[T]``, ``dict[K, V]``, ``Optional[T]``,
         ``Literal[...]``, ``tuple[T, ...]``)
E1206    unknown metric (a reference, or a built-in metric name)
E1207    unknown dataset
E1208    unknown optimizer
E1209    unknown parameter or option (optimizer, predictor, metric, dataset, optimize)
E1210    unknown name in a module body (not an input, a step or an enum value)
E1211    unknown field (step output, class field, enum value, test expectation)
E1212    a step used before it is defined (or by itself)
E1213    a type lmpc does not support (DSPy's Image, Audio, History, Tool, ...; sets, bytes)
E1301    missing argument or required option
E1302    unknown or extra argument
E1303    type mismatch along the dataflow (argument, return, default, test value)
E1304    return does not match the declared outputs (or is missing / not last);
         signature with no output
E1305    module recursion
E1306    bad constraint (unknown function, reads no step output, not a condition)
E1307    invalid option value (LM setting, predictor option, tool path, default)
E1401    data file not found (dataset or retrieval corpus)
E1402    dataset inputs do not match the optimized module's inputs
E1403    bad dataset declaration (format, inputs, map, split)
E1404    dataset content does not fit (unreadable, missing column or label)
E1501    metric reads a field that is not an output of the optimized module
E1502    bad metric (arguments, options, weights, regex, cycle, python path)
E1601    optimizer parameter has the wrong type (or is not named / not a value)
E1602    optimizer parameter out of range or not one of its choices
E1603    optimizer parameters that do not go together
E1604    bad optimize option (LM role, budget, seed, threads)
E1605    optimizer specified but not implemented in this version
E1701    bad test (non-literal value, unsupported expectation)
E1999    internal error in the checker (a bug: please report it)
W1606    warning: an optimizer's instruction writer (prompt_model / reflection, else the
         task LM) is the embedded base model
W1901    warning: a secret written in the source instead of ``env.NAME``
=======  ==============================================================================
"""

from __future__ import annotations

import logging
import os

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.data import check_dataset, check_metric
from lmpc.compiler.check.decls import (
    check_class,
    check_enum,
    check_lm,
    check_signature,
    check_tool,
)
from lmpc.compiler.check.imports import LoadedFile, load_files
from lmpc.compiler.check.modules import CallEdge, check_body, check_recursion, module_header
from lmpc.compiler.check.optimize import check_optimize, check_optimize_names, check_test
from lmpc.compiler.check.scope import MAX_ERRORS, NAMESPACES, Scope, TooManyErrors
from lmpc.compiler.check.typecheck import BUILTIN_NAMES, TypeResolver
from lmpc.diagnostics import Diagnostic
from lmpc.grammar import ast
from lmpc.grammar.parser import gc_paused
from lmpc.ir import ProgramIR, SourceIR, Span

log = logging.getLogger("lmpc")

Result = tuple[ProgramIR | None, list[Diagnostic], dict[str, str]]


def load_program(path: str | os.PathLike[str]) -> Result:
    """Check the program rooted at ``path``.

    Returns ``(ir, diagnostics, sources)``: ``ir`` is None when there is any error
    (warnings alone keep it); ``sources`` maps each file's path to its text, for
    :func:`lmpc.diagnostics.render`. Never raises.
    """
    return _run(os.fspath(path), None)


def check_text(text: str, path: str = "<text>") -> Result:
    """Like :func:`load_program` for source given as text (imports resolve from ``path``)."""
    return _run(path, text)


def _run(path: str, text: str | None) -> Result:
    # No cyclic GC while checking: the AST and IR are large and acyclic, and collections
    # over them were a third of the time on big files. GC resumes once the ASTs are
    # freed, so the collection it owes sees only the result.
    with gc_paused():
        return _check(path, text)


def _check(path: str, text: str | None) -> Result:
    scope = Scope()
    program = None
    try:
        files, syntax_errors = load_files(path, text, scope)
        if not syntax_errors and not scope.error_count():
            program = _analyse(files, path, scope)
    except TooManyErrors:
        last = scope.diagnostics[-1].span
        scope.diagnostics.append(Diagnostic(
            "E1099", f"too many errors; stopped after {MAX_ERRORS}", last))
    except Exception as exc:  # a checker bug must not become a traceback for the user
        log.debug("internal checker error on %s", path, exc_info=True)
        scope.diagnostics.append(Diagnostic(
            "E1999", f"internal checker error: {exc!r}", Span(file=path, line=1, col=1),
            "this is a bug in lmpc; please report it with the file"))
    sources = {p: s.text for p, s in scope.sources.items()}
    order = {p: i for i, p in enumerate(sources)}
    diags = sorted(scope.diagnostics, key=lambda d: (order.get(d.span.file, len(order)),
                                                     d.span.line, d.span.col))
    if any(d.severity == "error" for d in diags):
        program = None
    return program, diags, sources


def _analyse(files: list[LoadedFile], root: str, scope: Scope) -> ProgramIR:
    """Build the IR stage by stage; each stage may read what earlier ones built."""
    _collect(files, scope)
    base_dir = os.path.dirname(root) or "."
    # absolute: an artifact stores it relative to where the artifact is written
    program = ProgramIR(base_dir=os.path.abspath(base_dir),
                        sources=[SourceIR(path=f.path, sha256=f.sha256) for f in files])
    ctx = Ctx(scope=scope, types=TypeResolver(scope), program=program, base_dir=base_dir)
    decls = [d for f in files for d in f.tree.decls]
    _types(decls, ctx)
    for d in _of(decls, ast.LMDecl, ctx.scope):
        program.lms[d.name] = check_lm(d, ctx)
    for d in _of(decls, ast.SignatureDecl, ctx.scope):
        program.signatures[d.name] = check_signature(d, ctx)
    for d in _of(decls, ast.ToolDecl, ctx.scope):
        program.tools[d.name] = check_tool(d, ctx)
    _modules(decls, ctx)
    for d in _of(decls, ast.DatasetDecl, ctx.scope):
        program.datasets[d.name] = check_dataset(d, ctx)
    for d in _of(decls, ast.MetricDecl, ctx.scope):
        program.metrics[d.name] = check_metric(d, ctx)
    check_optimize_names(_of(decls, ast.OptimizeDecl, ctx.scope), ctx)
    for d in _of(decls, ast.OptimizeDecl, ctx.scope):
        opt = check_optimize(d, ctx)
        if opt is not None:
            program.optimizes.append(opt)
    _tests(decls, ctx)
    return program


def _of(decls: list[ast.Node], kind: type, scope: Scope) -> list:
    """Declarations of one kind that won their name (duplicates are already reported)."""
    namespace = NAMESPACES.get(kind)
    return [d for d in decls if isinstance(d, kind) and
            (namespace is None or scope.decls[namespace].get(d.name) is d)]


def _collect(files: list[LoadedFile], scope: Scope) -> None:
    """Register every named declaration in its namespace; report duplicates (E1101)."""
    for f in files:
        for decl in f.tree.decls:
            namespace = NAMESPACES.get(type(decl))
            if namespace is None:
                continue
            first = scope.decls[namespace].get(decl.name)
            if namespace == "type" and decl.name in BUILTIN_NAMES:
                scope.error("E1101", f"'{decl.name}' is a built-in type",
                            scope.name_span(decl.span, decl.name))
            elif first is not None:
                where = first.span
                scope.error("E1101", f"'{decl.name}' is already defined at {where.file}:"
                            f"{where.line}:{where.col}", scope.name_span(decl.span, decl.name),
                            "rename one of them")
            else:
                scope.decls[namespace][decl.name] = decl


def _types(decls: list[ast.Node], ctx: Ctx) -> None:
    program = ctx.program
    for d in _of(decls, ast.EnumDecl, ctx.scope):
        program.enums[d.name] = check_enum(d, ctx)
    for d in _of(decls, ast.ClassDecl, ctx.scope):
        program.classes[d.name] = check_class(d, ctx)
    for d in _of(decls, ast.TypeAlias, ctx.scope):
        ctx.types.alias(d)
    ctx.index_enums()


def _modules(decls: list[ast.Node], ctx: Ctx) -> None:
    modules = _of(decls, ast.ModuleDecl, ctx.scope)
    for d in modules:
        ctx.program.modules[d.name] = module_header(d, ctx)
    edges: list[CallEdge] = []
    for d in modules:
        check_body(d, ctx.program.modules[d.name], ctx, edges)
    check_recursion(edges, ctx)


def _tests(decls: list[ast.Node], ctx: Ctx) -> None:
    seen: dict[str, ast.TestDecl] = {}
    for d in _of(decls, ast.TestDecl, ctx.scope):
        if d.name in seen:
            ctx.scope.error("E1101", f"a test named {d.name!r} already exists (line "
                            f"{seen[d.name].span.line})", d.span)
            continue
        seen[d.name] = d
        test = check_test(d, ctx)
        if test is not None:
            ctx.program.tests.append(test)
