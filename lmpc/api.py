"""The Python API: use a built program inside a service, a notebook or a CI job.

>>> import lmpc                                                    # doctest: +SKIP
>>> router = lmpc.load("build/Router.json")                        # doctest: +SKIP
>>> router(ticket="Please refund the $49 charge").category         # doctest: +SKIP
'billing'

``load`` reads an artifact (or a ``.lmp`` file: its unoptimized program) exactly as
``lmpc run`` does — validated, no user code imported — and applies the same trust rules
(docs/trust.md): the runner's ``allow_tools`` / ``allow_endpoints`` / ``allow_paths``, the
``LMPC_ALLOW_*`` variables and the user's trust file; a program that would do more is
refused when it is loaded, with every blocked effect named. The returned
:class:`Program` is called with keyword inputs and returns an instance of its
``Output`` model (enums as their values, classes as pydantic models). There are no
global settings: the LM is chosen per program (``load(..., lm=)``,
``program.with_lm()``) or per call (``lm=``), so two programs with different models
run side by side. Every failure is one of this module's exceptions (:class:`Error`).

``build`` runs a file's ``optimize`` block as ``lmpc build`` does and returns the result
with the artifact's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from lmpc.compiler.artifact import Artifact
    from lmpc.compiler.pipeline import BuildResult
    from lmpc.ir import LMIR, ProgramIR
    from lmpc.runtime.context import RunContext
    from lmpc.runtime.trust import Trust

__all__ = ["Build", "BuildError", "Error", "InputError", "LoadError", "NotAllowed",
           "Program", "RunError", "build", "load"]

log = logging.getLogger("lmpc")

# ---------------------------------------------------------------- errors


class Error(Exception):
    """Base of every error the Python API raises."""


class LoadError(Error):
    """The artifact or source cannot be loaded (missing, invalid, does not check)."""


class NotAllowed(LoadError):
    """The program would cause an effect the runner has not allowed (docs/trust.md)."""


class InputError(Error, ValueError):
    """Inputs that do not fit the module: a missing or unknown field, a wrong type."""


class RunError(Error):
    """A run failed (an LM error after retries, an unparsable reply, a failed assert).

    From :meth:`Program.batch`, ``results`` holds every row's output or error."""

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results


class BuildError(Error):
    """A build that could not run or failed; nothing was written."""


# ---------------------------------------------------------------- loading


def load(path: str | Path, *, program: str | None = None, lm: Any = None,
         allow_tools: bool | Iterable[str] = False, allow_endpoints: Iterable[str] = (),
         allow_paths: Iterable[str | Path] = (), cache: bool = True,
         cache_dir: str | Path | None = None, threads: int = 4,
         transport: Any = None, trust: Trust | None = None) -> Program:
    """Load an artifact (or a ``.lmp`` source) as a callable :class:`Program`.

    ``program`` picks a module (default: the built one); ``lm`` overrides the task model;
    ``allow_tools`` is True (all Python code) or tool names / import paths;
    ``transport`` replaces litellm (a ``ScriptedTransport`` in tests); ``threads`` is
    the default parallelism of :meth:`Program.batch`; ``trust`` (a
    ``lmpc.runtime.trust.Trust`` the caller made, as the CLI does from its flags) takes
    the place of the ``allow_*`` arguments.
    """
    ir, module, artifact = _read(Path(path), program)
    trust = trust or _trust(path, allow_tools, allow_endpoints, allow_paths, LoadError)
    client = _client(cache, cache_dir, transport, trust)
    loaded = Program(ir, module, trust=trust, client=client, path=Path(path),
                     artifact=artifact, threads=threads)
    return loaded.with_lm(lm) if lm is not None else loaded._checked()


def _trust(path: str | Path, allow_tools: bool | Iterable[str], endpoints: Iterable[str],
           paths: Iterable[str | Path], error: type[Error]) -> Trust:
    """The runner's trust: these arguments, the ``LMPC_ALLOW_*`` variables and the
    user's trust file (docs/trust.md), for the program at ``path``."""
    from lmpc.runtime.trust import Trust, TrustError

    names = () if isinstance(allow_tools, bool) else tuple(allow_tools)
    try:
        return Trust.configured(allow_tools=allow_tools is True, tools=names,
                                endpoints=endpoints, paths=paths).for_file(path)
    except TrustError as exc:
        raise error(str(exc)) from None


def _read(path: Path, program: str | None) -> tuple[ProgramIR, str, Artifact | None]:
    from lmpc.compiler.artifact import ArtifactError, looks_like_artifact, read_artifact

    if not path.is_file():
        raise LoadError(f"{path}: no such file" if not path.exists()
                        else f"{path}: is not a regular file")
    artifact = None
    try:
        if looks_like_artifact(path):
            artifact = read_artifact(path)
            ir, module = artifact.ir, program or artifact.program
        else:
            ir = _source(path, LoadError)
            module = program or _default_module(ir, path)
    except ArtifactError as exc:
        raise LoadError(str(exc)) from None
    if module not in ir.modules:
        known = ", ".join(sorted(ir.modules)) or "none"
        raise LoadError(f"{path}: no module named {module!r} (modules: {known})")
    return ir, module, artifact


def _source(path: Path, error: type[Error]) -> ProgramIR:
    from lmpc.compiler.check.program import load_program
    from lmpc.diagnostics import render_all

    ir, diagnostics, sources = load_program(path)
    errors = [d for d in diagnostics if getattr(d, "severity", "error") == "error"]
    if ir is None or errors:
        raise error(render_all(errors or diagnostics, sources))
    return ir


def _default_module(ir: ProgramIR, path: Path) -> str:
    if ir.optimizes:
        return ir.optimizes[0].program
    if len(ir.modules) == 1:
        return next(iter(ir.modules))
    raise LoadError(f"{path}: declares {len(ir.modules)} modules "
                    f"({', '.join(ir.modules) or 'none'}); choose one with program=")


def _client(cache: bool, cache_dir: str | Path | None, transport: Any, trust: Trust) -> Any:
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.lm import LitellmTransport, LMClient

    store = SQLiteCache(Path(cache_dir) / "cache.sqlite" if cache_dir else None) \
        if cache else None
    return LMClient(transport or LitellmTransport(trust=trust), cache=store)


# ---------------------------------------------------------------- the program


class Program:
    """A loaded program: call it with keyword inputs, get its ``Output`` model back.

    ``Input`` and ``Output`` are pydantic models generated from the module's signature
    (what ``lmpc serve`` publishes). ``lm=`` is reserved in calls for the per-call LM
    (use :meth:`with_lm` if the module has an input named ``lm``).
    """

    def __init__(self, ir: ProgramIR, module: str, *, trust: Trust, client: Any,
                 path: Path | None = None, artifact: Artifact | None = None,
                 threads: int = 4, task_lm: LMIR | None = None,
                 _shared: dict[str, Any] | None = None) -> None:
        from lmpc.runtime.execute import default_task_lm
        from lmpc.runtime.typed import TypeModels

        self.ir, self.name, self.path, self.artifact = ir, module, path, artifact
        self.trust, self.client, self.threads = trust, client, threads
        self.task_lm = task_lm or default_task_lm(ir)
        # contexts by LM name and the models, shared by every with_lm() copy
        self._shared = _shared if _shared is not None else {"ctx": {}, "models": None}
        if self._shared["models"] is None:
            models = TypeModels(ir)
            self._shared["models"] = (models.input_model(module), models.output_model(module))
        self.Input: type[BaseModel]
        self.Output: type[BaseModel]
        self.Input, self.Output = self._shared["models"]

    def __repr__(self) -> str:
        ins = ", ".join(f"{f.name}: {f.type}" for f in self.ir.modules[self.name].inputs)
        outs = ", ".join(f"{f.name}: {f.type}" for f in self.ir.modules[self.name].outputs)
        return f"<lmpc.Program {self.name}({ins}) -> ({outs}) on {self.task_lm.model}>"

    @property
    def inputs(self) -> list[str]:
        return [f.name for f in self.ir.modules[self.name].inputs]

    @property
    def outputs(self) -> list[str]:
        return list(self.Output.model_fields)

    @property
    def scores(self) -> dict[str, Any]:
        """The artifact's before/after scores per split (empty for a ``.lmp`` source)."""
        return self.artifact.scores.model_dump(exclude_none=True) if self.artifact else {}

    def usage(self) -> dict[str, Any]:
        """LM calls, cache hits, tokens and cost of this program's client so far."""
        return dict(self.client.usage.snapshot())

    # ------------------------------------------------------------ LMs

    def with_lm(self, lm: Any) -> Program:
        """The same program on another task LM (a declared LM's name, a litellm model
        string or an ``LMIR``); client, cache and trust are shared."""
        other = Program(self.ir, self.name, trust=self.trust, client=self.client,
                        path=self.path, artifact=self.artifact, threads=self.threads,
                        task_lm=self._resolve(lm), _shared=self._shared)
        return other._checked()

    def _resolve(self, lm: Any) -> LMIR:
        from lmpc.ir import LMIR
        from lmpc.runtime.execute import default_task_lm

        if isinstance(lm, LMIR):
            return lm
        if isinstance(lm, str) and lm.strip():
            return default_task_lm(self.ir, lm)
        raise InputError(f"lm must be an LM name, a model string or an LMIR, got {lm!r}")

    def _checked(self) -> Program:
        self._ctx(self.task_lm)
        return self

    def _ctx(self, lm: LMIR) -> RunContext:
        """The run context for ``lm``; the program's effects with it are checked
        against the trust the first time (``NotAllowed`` lists every blocked one)."""
        key = lm.model_dump_json()
        contexts = self._shared["ctx"]
        if key not in contexts:
            from lmpc.compiler.pipeline import make_run_ctx
            from lmpc.runtime.effects import blocked, program_effects

            refused = [e for e in blocked(program_effects(self.ir, self.name, self.trust, lm))
                       if e.kind in ("lm", "file", "code")]
            if refused:
                lines = "\n".join(f"  {e.line()}" for e in refused)
                raise NotAllowed(f"refusing to load {self.name}: the program would do what "
                                 f"you have not allowed (see docs/trust.md)\n{lines}")
            contexts[key] = make_run_ctx(self.ir, self.client, lm, trust=self.trust)
        return contexts[key]

    # ------------------------------------------------------------ calling

    def __call__(self, /, lm: Any = None, **inputs: Any) -> Any:
        """Run once; return an ``Output`` instance. Raises :class:`InputError` or
        :class:`RunError`."""
        lm, inputs = self._split_lm(lm, inputs)
        ctx = self._ctx(self._resolve(lm) if lm is not None else self.task_lm)
        row = self._inputs(inputs, "")
        from lmpc.runtime.execute import run_module

        try:
            prediction = run_module(self.ir, self.name, row, ctx)
        except Exception as exc:
            raise RunError(_describe(exc)) from exc
        return self._output(prediction.outputs)

    async def acall(self, /, lm: Any = None, **inputs: Any) -> Any:
        """``await program.acall(...)``: the call on a worker thread, so an event loop
        (FastAPI, a notebook) keeps serving while the LM answers."""
        return await asyncio.to_thread(self.__call__, lm, **inputs)

    def batch(self, rows: Iterable[Mapping[str, Any]], *, threads: int | None = None,
              lm: Any = None, return_exceptions: bool = False) -> list[Any]:
        """Run every row (in parallel, order kept). Every row is checked before any LM
        call (:class:`InputError` names the row). A failed row raises :class:`RunError`
        after all rows ran (its ``results`` keep every row), or with
        ``return_exceptions=True`` stands in the list as its ``RunError``."""
        from lmpc.runtime.execute import Prediction, run_batch

        checked = [self._inputs(dict(row), f"row {i}: ") for i, row in enumerate(rows)]
        ctx = self._ctx(self._resolve(lm) if lm is not None else self.task_lm)
        raw = run_batch(self.ir, self.name, checked, ctx, threads=threads or self.threads)
        results: list[Any] = []
        failed: list[int] = []
        for i, result in enumerate(raw):
            if isinstance(result, Prediction):
                results.append(self._output(result.outputs))
            else:
                error = RunError(f"row {i}: {_describe(result)}")
                error.__cause__ = result
                results.append(error)
                failed.append(i)
        if failed and not return_exceptions:
            raise RunError(f"{len(failed)} of {len(results)} rows failed; first: "
                           f"{results[failed[0]]}", results)
        return results

    async def abatch(self, rows: Iterable[Mapping[str, Any]], *, threads: int | None = None,
                     lm: Any = None, return_exceptions: bool = False) -> list[Any]:
        """:meth:`batch` on a worker thread."""
        return await asyncio.to_thread(self.batch, list(rows), threads=threads, lm=lm,
                                       return_exceptions=return_exceptions)

    # ------------------------------------------------------------ helpers

    def _split_lm(self, lm: Any, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if lm is not None and "lm" in self.inputs:  # the module's own input named lm
            return None, {**inputs, "lm": lm}
        return lm, inputs

    def _inputs(self, inputs: dict[str, Any], where: str) -> dict[str, Any]:
        """The inputs coerced to their declared types (``module_inputs``, as ``lmpc run``
        checks rows); unknown names are an error, as for a Python function."""
        from lmpc.runtime.errors import RuntimeFailure
        from lmpc.runtime.execute import module_inputs

        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise InputError(f"{where}{self.name} has no input(s) {', '.join(unknown)} "
                             f"(inputs: {', '.join(self.inputs) or 'none'})")
        try:
            return module_inputs(self.ir, self.ir.modules[self.name], inputs)
        except RuntimeFailure as exc:
            raise InputError(f"{where}{exc}") from None

    def _output(self, outputs: dict[str, Any]) -> Any:
        from pydantic import ValidationError

        try:
            return self.Output.model_validate(outputs)
        except ValidationError as exc:  # the runtime coerced them: a bug, said plainly
            raise RunError(f"{self.name}: outputs do not fit {self.Output.__name__}: "
                           f"{exc.errors()[0]['msg']}") from exc


def _describe(exc: BaseException) -> str:
    from lmpc.runtime.errors import RuntimeFailure
    from lmpc.runtime.lm_types import LMError

    if isinstance(exc, RuntimeFailure | LMError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- building


@dataclass
class Build:
    """A finished build: where the artifact is, its summary (what ``lmpc build --json``
    prints) and the full result (the optimized IR, per-split evaluations, passes)."""

    artifact: Path
    summary: dict[str, Any]
    result: BuildResult

    @property
    def scores(self) -> dict[str, dict[str, float | None]]:
        return self.result.scores

    def load(self, **options: Any) -> Program:
        """The built program (``lmpc.load(self.artifact, **options)``)."""
        return load(self.artifact, **options)


def build(path: str | Path, *, program: str | None = None, optimize: str | None = None,
          output: str | Path | None = None, seed: int | None = None, lm: str | None = None,
          threads: int | None = None, cache: bool = True, cache_dir: str | Path | None = None,
          allow_tools: bool | Iterable[str] = False, allow_endpoints: Iterable[str] = (),
          allow_paths: Iterable[str | Path] = (), transport: Any = None,
          progress: Callable[[Any], None] | None = None) -> Build:
    """Build one ``optimize`` block of the ``.lmp`` file at ``path`` (as ``lmpc build``
    does) and write its artifact (default ``build/NAME.json``, relative to the working
    directory). ``program`` / ``optimize`` choose the block when there are several;
    ``progress`` receives the typed events of ``lmpc.compiler.passes.base``."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"{path}: no such file")
    ir = _source(path, BuildError)
    index, block = _block(ir, program, optimize, path)
    out = Path(output) if output else Path("build") / f"{block.name or block.program}.json"
    trust = _trust(path, allow_tools, allow_endpoints, allow_paths, BuildError)
    try:
        from lmpc.compiler.build import build_one
        from lmpc.compiler.pipeline import task_lm_for
        from lmpc.runtime.effects import blocked, program_effects

        refused = blocked(program_effects(ir, block.program, trust,
                                          task_lm_for(ir, block, lm), metric=block.metric,
                                          datasets=True))
        if refused:
            lines = "\n".join(f"  {e.line()}" for e in refused)
            raise NotAllowed(f"refusing to build {block.program}: the program would do what "
                             f"you have not allowed (see docs/trust.md)\n{lines}")
        client = _client(cache, cache_dir, transport, trust)
        kept: dict[str, Any] = {}
        summary = build_one(ir, index, block, client=client, out=out, seed=seed, lm_name=lm,
                            threads=threads, progress=progress or (lambda event: None),
                            trust=trust, keep=kept)
    except Error:
        raise
    except _build_errors() as exc:
        raise BuildError(str(exc)) from exc
    return Build(artifact=out, summary=summary, result=kept["result"])


def _block(ir: ProgramIR, program: str | None, optimize: str | None, path: Path
           ) -> tuple[int, Any]:
    chosen = [(i, o) for i, o in enumerate(ir.optimizes)
              if program in (None, o.program) and optimize in (None, o.name)]
    if len(chosen) == 1:
        return chosen[0]
    names = ", ".join(o.name or o.program for o in ir.optimizes) or "none"
    if not chosen:
        raise BuildError(f"{path}: no optimize block matches (blocks: {names})")
    raise BuildError(f"{path}: {len(chosen)} optimize blocks match ({names}); choose one "
                     "with program= or optimize=")


def _build_errors() -> tuple[type[BaseException], ...]:
    from lmpc.compiler.artifact import ArtifactError
    from lmpc.compiler.passes._demos import PassError
    from lmpc.compiler.pipeline import PipelineError
    from lmpc.eval.data import DataError
    from lmpc.eval.metrics import MetricError
    from lmpc.runtime.errors import RuntimeFailure
    from lmpc.runtime.lm_types import LMError

    return (ArtifactError, PassError, PipelineError, DataError, MetricError,
            RuntimeFailure, LMError, OSError)
