"""The artifact: one JSON file holding the optimized program and how it was made.

It is serialized IR plus provenance (DESIGN.md §4): a schema version, the compiler
version, the hashes of the sources and datasets, the IR the program needs (modules,
predictors with their instructions and demos, signatures, types, tools, LMs — secrets
only as ``{"env": NAME}``), every pass with its parameters, candidates and usage, and
the val/test scores before and after. Loading one needs no Python class of the user's:
it is validated against the schema and never imports anything.

The bytes are deterministic — sorted keys, floats rounded to 6 places, paths relative
to the artifact's folder, no timestamps — so the same source, data, seed and cache give
a byte-identical file, and a rebuild diffs cleanly in review. Writes are atomic: a temp
file in the target folder, fsync, then ``os.replace``; an interrupted build leaves the
old artifact (or none), never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmpc.credentials import credential_problems
from lmpc.files import ARTIFACT_LIMIT, FileProblem, is_regular, read_text
from lmpc.ir import PredictorIR, ProgramIR, SourceIR, TypeRef
from lmpc.runtime.validate import program_problems
from lmpc.version import __version__

SCHEMA_VERSION = 2
# 2 added what `lmpc report` reads: pass trajectories, per-example scores, the
# unoptimized predictors. A version-1 artifact still loads (and runs); its report says
# what it does not record.
READABLE_VERSIONS = (1, 2)
FLOAT_DIGITS = 6


class ArtifactError(Exception):
    """An artifact that cannot be written or loaded; the message names the file."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRecord(Strict):
    """A data file a build read; ``part`` names its split when the data came split."""

    name: str
    path: str
    sha256: str
    rows: int = 0
    part: str | None = None


class SplitScores(Strict):
    before: float | None = None
    after: float | None = None


class Scores(Strict):
    """Before/after scores; ``train`` only when the dataset had no val split (the build
    then reports on the trainset, which the passes learned from)."""

    train: SplitScores | None = None
    val: SplitScores = Field(default_factory=SplitScores)
    test: SplitScores = Field(default_factory=SplitScores)


class UsageRecord(Strict):
    """LM work, counted the same whether a call was new or served by the cache."""

    lm_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0


class CandidateRecord(Strict):
    label: str
    score: float


class TrialRecord(Strict):
    """One scored candidate or trial of a pass, in the order they were scored: its
    score, the best so far, and the pass's LM work (requests, tokens) and examples
    evaluated up to it. Recorded by the driver from the pass's progress events, so a
    new pass gets one by reporting its candidates (``ctx.emit(..., score=,
    finished=True)``)."""

    label: str = ""
    score: float
    best: float | None = None
    lm_requests: int = 0
    tokens: int = 0
    examples: int = 0


class ExampleRecord(Strict):
    """One scored example of val or test: what it asked (long values clipped), the
    expected labels, the score and outputs before and after optimization (None:
    the run failed)."""

    source: str = ""  # "classify.jsonl:12"
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    before: float | None = None
    after: float | None = None
    outputs_before: dict[str, Any] | None = None
    outputs_after: dict[str, Any] | None = None


class PassRecord(Strict):
    """One pass of the pipeline: what it was asked, what it tried, what it cost."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    candidates: list[CandidateRecord] = Field(default_factory=list)
    report: dict[str, Any] = Field(default_factory=dict)
    usage: UsageRecord = Field(default_factory=UsageRecord)
    stopped: str | None = None  # why the pass stopped early (budget)
    trajectory: list[TrialRecord] = Field(default_factory=list)


class Artifact(Strict):
    """The whole artifact file."""

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    compiler_version: str = __version__
    program: str
    metric: str | None = None
    task_lm: str | None = None
    seed: int = 0
    sources: list[SourceIR] = Field(default_factory=list)
    datasets: list[DatasetRecord] = Field(default_factory=list)
    splits: dict[str, int] = Field(default_factory=dict)
    ir: ProgramIR
    passes: list[PassRecord] = Field(default_factory=list)
    scores: Scores = Field(default_factory=Scores)
    usage: UsageRecord = Field(default_factory=UsageRecord)
    budget_stop: str | None = None
    examples: dict[str, list[ExampleRecord]] = Field(default_factory=dict)  # by split
    baseline: dict[str, PredictorIR] = Field(default_factory=dict)  # before the passes


def artifact_json_schema() -> dict[str, Any]:
    """The JSON Schema of the artifact file."""
    return Artifact.model_json_schema()


# ---------------------------------------------------------------- restricting the IR


def program_subset(program: ProgramIR, module: str, optimize_index: int | None = None
                   ) -> ProgramIR:
    """The part of ``program`` that ``module`` needs to run (and to be scored).

    Keeps the reachable modules and predictors, the signatures, enums, classes and tools
    they use, the LMs they (and the optimize block) name, the metric of the optimize
    block with its parts, that one optimize block and its dataset's description (path,
    mapping, split: no rows), and the test blocks of the kept modules.
    """
    modules = set(program.modules_of(module))
    predictors = {pid: p for pid, p in program.predictors.items()
                  if pid.partition(".")[0] in modules}
    optimizes = [program.optimizes[optimize_index]] if optimize_index is not None else []
    metrics = _needed_metrics(program, optimizes, predictors.values())
    sig_names = {p.signature.name for p in predictors.values()}
    sig_names |= {m.signature for m in metrics.values() if m.signature}
    signatures = {n: s for n, s in program.signatures.items() if n in sig_names}
    tools = _needed_tools(program, modules, predictors.values())
    types = _type_names(program, [*signatures.values(), *[p.signature for p in
                                                          predictors.values()]], tools)
    lm_names = {p.lm for p in predictors.values() if p.lm}
    lm_names |= {m.lm for m in metrics.values() if m.lm}
    for opt in optimizes:
        lm_names |= set(opt.lms.values())
    return ProgramIR(
        sources=program.sources,
        base_dir=program.base_dir,
        lms={n: lm for n, lm in program.lms.items() if n in lm_names},
        enums={n: e for n, e in program.enums.items() if n in types},
        classes={n: c for n, c in program.classes.items() if n in types},
        signatures=signatures,
        tools=tools,
        modules={n: m for n, m in program.modules.items() if n in modules},
        predictors=predictors,
        metrics=metrics,
        optimizes=optimizes,
        datasets={o.dataset: program.datasets[o.dataset] for o in optimizes
                  if o.dataset in program.datasets},
        tests=[t for t in program.tests if t.module in modules],
        ensemble=program.ensemble,
    )


def _needed_metrics(program: ProgramIR, optimizes: list[Any], predictors: Any) -> dict[str, Any]:
    todo = [o.metric for o in optimizes]
    todo += [p.options["reward"] for p in predictors if isinstance(p.options.get("reward"), str)]
    found: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        metric = program.metrics.get(name)
        if metric is None or name in found:
            continue
        found[name] = metric
        todo.extend(part for _, part in metric.parts)
    return found


def _needed_tools(program: ProgramIR, modules: set[str], predictors: Any) -> dict[str, Any]:
    names: set[str] = set()
    for module in modules:
        for step in program.modules[module].steps:
            names |= {n for n in (step.tool, step.retrieve.tool if step.retrieve else None) if n}
    for pred in predictors:
        names |= set(pred.options.get("tools") or [])
    return {n: t for n, t in program.tools.items() if n in names}


def _type_names(program: ProgramIR, signatures: list[Any], tools: dict[str, Any]) -> set[str]:
    """Enum and class names used by the signatures and tools, through nested classes."""
    found: set[str] = set()
    todo: list[TypeRef] = [f.type for s in signatures for f in (*s.inputs, *s.outputs)]
    todo += [f.type for t in tools.values() for f in t.params] + [t.returns for t in
                                                                  tools.values()]
    while todo:
        ref = todo.pop()
        todo.extend(ref.args)
        if ref.name and ref.name not in found:
            found.add(ref.name)
            if ref.name in program.classes:
                todo.extend(f.type for f in program.classes[ref.name].fields)
    return found


def check_no_secrets(program: ProgramIR) -> None:
    """Refuse an LM setting that holds a literal credential (at any depth: headers, URLs,
    fallbacks); a credential is written ``env.NAME`` and read only when a call is made."""
    for lm in program.lms.values():
        problems = credential_problems(lm.settings) + credential_problems(lm.fallbacks,
                                                                          "fallbacks")
        if problems:
            where, why = problems[0]
            raise ArtifactError(
                f"LM {lm.name!r}: setting {where!r} holds {why}; write it as an "
                f"environment reference (env.NAME); an artifact never holds a credential"
            )


# ---------------------------------------------------------------- writing


def artifact_bytes(artifact: Artifact, directory: str | Path) -> bytes:
    """The exact bytes of ``artifact`` written in ``directory`` (paths made relative)."""
    check_no_secrets(artifact.ir)
    data = artifact.model_dump(mode="json")
    data["ir"]["base_dir"] = _relative(data["ir"]["base_dir"], directory)
    data = _normalize(data, Path(directory))
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_artifact(artifact: Artifact, path: str | Path) -> Path:
    """Write ``artifact`` to ``path`` atomically and durably; return the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot create folder: {exc.strerror}") from exc
    artifact = store_weights(artifact, path)
    data = artifact_bytes(artifact, path.parent.resolve())
    atomic_write(path, data)
    return path


def weights_folder(path: Path) -> Path:
    """Where an artifact's tuned weights live: ``<artifact stem>.weights/`` beside it."""
    return path.parent / f"{path.stem}.weights"


def store_weights(artifact: Artifact, path: Path) -> Artifact:
    """A copy of ``artifact`` whose tuned weights files lie beside ``path`` (copied there
    by content, atomically), named by their sha256; files of earlier builds of the same
    artifact that it no longer names are removed."""
    adapters = [lm.tuned.adapter for lm in artifact.ir.lms.values()
                if lm.tuned is not None and lm.tuned.adapter is not None]
    folder = weights_folder(path)
    if not adapters:
        return artifact
    artifact = artifact.model_copy(deep=True)
    kept = set()
    for lm in artifact.ir.lms.values():
        pin = lm.tuned.adapter if lm.tuned is not None else None
        if pin is None:
            continue
        target = folder / f"{pin.sha256[:32]}.gguf"
        kept.add(target.name)
        source = Path(pin.path)
        if source.resolve() != target.resolve():
            _copy_pinned(source, target, pin.sha256, pin.size)
        pin.path = str(target.resolve())
    for old in folder.glob("*.gguf"):
        if old.name not in kept:
            old.unlink(missing_ok=True)
    return artifact


def _copy_pinned(source: Path, target: Path, sha256: str, size: int) -> None:
    from lmpc.files import file_sha256
    from lmpc.runtime.weights import WeightsError

    if target.is_file() and target.stat().st_size == size and file_sha256(target) == sha256:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = source.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"tuned weights {source}: cannot read: {exc.strerror}") from exc
    import hashlib

    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(str(WeightsError(f"tuned weights {source}: changed since the "
                                             "build trained them; rebuild")))
    atomic_write(target, data)


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, flushed to disk, then renamed over it.

    The temp file is created with mode 0666 so the kernel applies the umask: an artifact
    is as readable as any file the user writes (``mkstemp``'s 0600 is for secrets, and an
    artifact holds none).
    """
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt too: never leave the temp file
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ArtifactError(f"{path}: cannot write: {exc.strerror}") from exc
        raise
    _fsync_dir(path.parent)


def _create_temp(path: Path) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot write: {exc.strerror}") from exc
    raise ArtifactError(f"{path}: cannot create a temporary file beside it")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _relative(path: str, directory: str | Path) -> str:
    """``path`` relative to the artifact's folder. A relative path here is the working
    directory's (the build's ``base_dir``, a span's file): it is made absolute first, so
    the bytes do not depend on where the build ran and a run from anywhere resolves it
    against the artifact."""
    try:
        return os.path.relpath(os.path.abspath(path), directory).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return path


def _normalize(value: Any, directory: Path, key: str = "") -> Any:
    """Round floats; make source and span paths relative to the artifact, and dataset
    paths too when absolute (a dataset's ``path`` in the IR is relative to ``base_dir``
    and stays as written otherwise)."""
    if isinstance(value, float):
        rounded = round(value, FLOAT_DIGITS)
        return 0.0 if rounded == 0 else rounded
    if isinstance(value, dict):
        out = {k: _normalize(v, directory, k) for k, v in value.items()}
        name = "file" if key == "span" else "path"
        item = out.get(name)
        if isinstance(item, str) and (key in ("span", "sources") or (
                "sha256" in out and os.path.isabs(item))):
            out[name] = _relative(item, directory)
        return out
    if isinstance(value, list | tuple):
        return [_normalize(v, directory, key) for v in value]
    return value


# ---------------------------------------------------------------- loading


def read_artifact(path: str | Path) -> Artifact:
    """Parse and validate an artifact file (no user code is imported)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such artifact")
    try:
        text = read_text(path, ARTIFACT_LIMIT)
    except FileProblem as exc:
        where = f"{path}:{exc.line}:{exc.col}" if exc.line else str(path)
        raise ArtifactError(f"{where}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
                            ) from None
    except RecursionError:
        raise ArtifactError(f"{path}: invalid artifact: nested more than "
                            f"{MAX_JSON_DEPTH} levels deep") from None
    deep = _too_deep(data, MAX_JSON_DEPTH)
    if deep is not None:
        raise ArtifactError(f"{path}: invalid artifact: nested more than {MAX_JSON_DEPTH} "
                            f"levels deep (at {deep})")
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ArtifactError(f"{path}: not an lmpc artifact (no schema_version)")
    version = data["schema_version"]
    if version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{path}: artifact schema version {version!r} is not supported by lmpc "
            f"{__version__} (it reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); rebuild it"
        )
    try:
        artifact = Artifact.model_validate(data)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid artifact: {_first_errors(exc)}") from exc
    if artifact.program not in artifact.ir.modules:
        raise ArtifactError(f"{path}: invalid artifact: program {artifact.program!r} "
                            "is not one of its modules")
    try:
        check_no_secrets(artifact.ir)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    problems = program_problems(artifact.ir)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ArtifactError(f"{path}: invalid artifact: at ir." + "; at ir.".join(
            problems[:3]) + more)
    base = Path(artifact.ir.base_dir)
    if not base.is_absolute():
        artifact.ir.base_dir = str((path.parent / base).resolve())
    _verify_weights(artifact, path)
    return artifact


def _verify_weights(artifact: Artifact, path: Path) -> None:
    """Every tuned weights file the artifact names: beside it, of the recorded size and
    sha256 (then named by its absolute path for the runtime)."""
    from lmpc.runtime.weights import WeightsError, verify_weights

    for lm in artifact.ir.lms.values():
        pin = lm.tuned.adapter if lm.tuned is not None else None
        if pin is None:
            continue
        if os.path.isabs(pin.path):
            raise ArtifactError(f"{path}: LM {lm.name!r}: tuned weights {pin.path}: an "
                                "artifact names its weights relative to its folder")
        try:
            pin.path = str(verify_weights(pin, path.parent))
        except WeightsError as exc:
            raise ArtifactError(f"{path}: LM {lm.name!r}: {exc}") from None


def load_artifact(path: str | Path) -> tuple[ProgramIR, str]:
    """The program IR and the name of its module, from an artifact file."""
    artifact = read_artifact(path)
    return artifact.ir, artifact.program


MAX_JSON_DEPTH = 200  # an artifact nests about 20 levels; a type or value a little more


def _too_deep(data: Any, limit: int) -> str | None:
    """The path to the first place ``data`` nests deeper than ``limit`` (no recursion)."""
    todo: list[tuple[Any, int, str]] = [(data, 0, "")]
    while todo:
        value, depth, where = todo.pop()
        if depth > limit:
            return where[:120] or "(top)"
        if isinstance(value, dict):
            todo.extend((v, depth + 1, f"{where}.{k}" if where else str(k))
                        for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(top)"
        if len(where) > 120:
            where = where[:60] + "…" + where[-59:]
        parts.append(f"at {where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def looks_like_artifact(path: str | Path) -> bool:
    """True for a JSON artifact, False for ``.lmp`` source (decided by content)."""
    path = Path(path)
    if path.suffix == ".lmp":
        return False
    if path.suffix == ".json":
        return True
    if not is_regular(path):  # a FIFO would block the peek
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(64).lstrip().startswith("{")
    except OSError:
        return False
