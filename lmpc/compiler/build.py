"""Building one optimize block: run its pipeline, write its artifact, sum up what it cost.

``lmpc build`` and ``lmpc.build`` (the Python API) both call ``build_one``; what they
print or return is theirs. The artifact is written only when the whole build has
finished, atomically (``artifact.write_artifact``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmpc.ir import OptimizeIR, ProgramIR


def build_one(program: ProgramIR, index: int, optimize: OptimizeIR, *, client: Any, out: Path,
              seed: int | None, lm_name: str | None, threads: int | None,
              progress: Callable[[dict[str, Any]], None], trust: Any = None,
              keep: dict[str, Any] | None = None, study: Any = None) -> dict[str, Any]:
    """Run one optimize block, write its artifact, return the summary (and put the
    ``BuildResult`` in ``keep["result"]``, for the Python API). ``study``: the
    ``StudyOptions`` of a build shared with workers (docs/distributed.md)."""
    from lmpc.compiler.artifact import check_no_secrets, write_artifact
    from lmpc.compiler.pipeline import run_optimize

    check_no_secrets(program)  # fail now, not after an hour of optimization
    started = time.monotonic()
    usage_before = client.usage.snapshot()
    result = run_optimize(program, optimize, client=client, seed=seed, progress=progress,
                          lm_override=lm_name, threads=threads, trust=trust, study=study)
    write_artifact(to_artifact(result, index), out)
    if keep is not None:
        keep["result"] = result
    spent = {k: v - usage_before.get(k, 0) for k, v in client.usage.snapshot().items()
             if isinstance(v, int | float)}
    return {
        "program": result.module,
        "optimize": optimize.name,
        "artifact": str(out),
        "scores": result.scores,
        "lm_calls": int(spent["calls"]),
        "cache_hits": int(spent["cache_hits"]),
        "tokens": int(spent["prompt_tokens"] + spent["completion_tokens"]),
        "cost_usd": round(spent["cost_usd"], 6),
        "seconds": round(time.monotonic() - started, 2),
        "failures": int(spent["failures"]),
        "retries": int(spent["retries"] + spent["parse_retries"]),
        "rejected": int(spent["rejected"]),
        "parse_retries": int(spent["parse_retries"]),
        "splits": result.splits,
        "budget_stop": result.budget_stop,
        "passes": [{"name": r.name, "lm_requests": r.usage.get("lm_requests", 0),
                    "best": max((c.score for c in r.candidates), default=None),
                    "stopped": r.stopped} for r in result.passes],
    }


def to_artifact(result: Any, optimize_index: int) -> Any:
    """The artifact of a finished build (deterministic: no times, no new-vs-cached counts)."""
    from lmpc.compiler.artifact import (
        Artifact,
        CandidateRecord,
        DatasetRecord,
        PassRecord,
        Scores,
        TrialRecord,
        UsageRecord,
        program_subset,
    )

    ir = program_subset(result.program, result.module, optimize_index)
    ir.lms[result.task_lm.name] = result.task_lm
    ir.optimizes[0].lms["lm"] = result.task_lm.name  # `lmpc run` uses the model it was built on
    passes = [PassRecord(
        name=r.name, params=jsonable(r.params), seed=r.seed,
        candidates=[CandidateRecord(label=c.label, score=c.score) for c in r.candidates],
        report=jsonable(r.report), usage=UsageRecord(**r.usage), stopped=r.stopped,
        trajectory=[TrialRecord(**t) for t in getattr(r, "trajectory", [])],
    ) for r in result.passes]
    return Artifact(
        program=result.module, metric=result.metric, task_lm=result.task_lm.name,
        seed=result.seed, sources=result.program.sources,
        datasets=[DatasetRecord(**d) for d in result.datasets], splits=result.splits, ir=ir,
        passes=passes, scores=Scores.model_validate(result.scores),
        usage=UsageRecord(**result.usage), budget_stop=result.budget_stop,
        examples=example_records(result), baseline=dict(getattr(result, "original", {})),
    )


MAX_EXAMPLES = 1000  # per split kept for the report; the scores cover every example
CLIP = 300  # characters of a string value kept for the report


def example_records(result: Any) -> dict[str, Any]:
    """Per scored split, each example's inputs, labels, and score and outputs before
    and after (what `lmpc report` shows as wins and losses)."""
    from pathlib import PurePath

    from lmpc.compiler.artifact import ExampleRecord

    records: dict[str, Any] = {}
    for split, examples in getattr(result, "examples", {}).items():
        before, after = result.before.get(split), result.after.get(split)
        if before is None or after is None:
            continue
        rows = []
        for i, example in enumerate(examples[:MAX_EXAMPLES]):
            path, _, line = example.source.rpartition(":")
            source = f"{PurePath(path).name}:{line}" if path else example.source
            rows.append(ExampleRecord(
                source=source, inputs=_clip(jsonable(example.inputs)),
                labels=_clip(jsonable(example.labels)),
                before=before.scores[i], after=after.scores[i],
                outputs_before=_shown_outputs(before.predictions[i]),
                outputs_after=_shown_outputs(after.predictions[i])))
        records[split] = rows
    return records


def _shown_outputs(prediction: Any) -> dict[str, Any] | None:
    if prediction is None:
        return None
    shown = {k: v for k, v in prediction.outputs.items() if k != "trajectory"}
    return _clip(jsonable(shown))


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= CLIP else value[:CLIP] + "…"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value[:20]]
    return value


def jsonable(value: Any) -> Any:
    """A pass report as plain JSON data (IR nodes dumped, unknown objects as text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)
