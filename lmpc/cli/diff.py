"""``lmpc diff A B``: what changed between two artifacts, readable in a terminal.

Compares per predictor the instructions (as a unified diff), the demos (added and
removed, with their kind), the LM and adapter; then the program's LMs, the passes and
the scores. Either side may be a ``.lmp`` source (its unoptimized program).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import click

from lmpc.cli.common import cli_errors, load_target, pct
from lmpc.ir import PredictorIR, ProgramIR


@click.command("diff")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
def command(a: str, b: str) -> None:
    """Show what changed from artifact A to artifact B."""
    with cli_errors():
        left, module_a, art_a = load_target(a, None)
        right, module_b, art_b = load_target(b, None)
    lines = diff_programs(left, right, module_a, module_b)
    lines += _diff_scores(art_a, art_b)
    click.echo("\n".join(lines) if lines else "no differences")


def diff_programs(left: ProgramIR, right: ProgramIR, module_a: str, module_b: str) -> list[str]:
    """Readable lines for every predictor-level and LM-level change."""
    lines = []
    if module_a != module_b:
        lines.append(f"program: {module_a} -> {module_b}")
    ids = list(dict.fromkeys([*left.predictors, *right.predictors]))
    for pid in ids:
        old, new = left.predictors.get(pid), right.predictors.get(pid)
        if old is None or new is None:
            lines.append(f"predictor {pid}: {'added' if old is None else 'removed'}")
            continue
        lines += _diff_predictor(old, new)
    for name in sorted(set(left.lms) | set(right.lms)):
        old_lm, new_lm = left.lms.get(name), right.lms.get(name)
        if _lm_key(old_lm) != _lm_key(new_lm):
            lines.append(f"lm {name}: {_lm_text(old_lm)} -> {_lm_text(new_lm)}")
    if (left.ensemble is None) != (right.ensemble is None):
        size = len(right.ensemble.members) if right.ensemble else 0
        lines.append(f"ensemble: {'added (' + str(size) + ' members)' if size else 'removed'}")
    return lines


def _diff_predictor(old: PredictorIR, new: PredictorIR) -> list[str]:
    lines = []
    if old.signature.instructions != new.signature.instructions:
        lines.append(f"predictor {old.id}: instructions")
        lines += ["    " + line.rstrip("\n") for line in difflib.unified_diff(
            old.signature.instructions.splitlines(), new.signature.instructions.splitlines(),
            "before", "after", lineterm="", n=1)]
    for attr in ("lm", "adapter", "kind"):
        if getattr(old, attr) != getattr(new, attr):
            lines.append(f"predictor {old.id}: {attr} {getattr(old, attr)} -> "
                         f"{getattr(new, attr)}")
    before = [_demo_text(d) for d in old.demos]
    after = [_demo_text(d) for d in new.demos]
    if before != after:
        lines.append(f"predictor {old.id}: demos {len(before)} -> {len(after)}")
        lines += [f"  - {d}" for d in before if d not in after]
        lines += [f"  + {d}" for d in after if d not in before]
    return lines


def _demo_text(demo: Any, width: int = 110) -> str:
    values = json.dumps(demo.values, ensure_ascii=False, sort_keys=True, default=str)
    text = f"[{demo.kind}] {values}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _lm_key(lm: Any) -> Any:
    """What matters of an LM for a diff (not where it was declared)."""
    return None if lm is None else lm.model_dump(exclude={"span"})


def _lm_text(lm: Any) -> str:
    if lm is None:
        return "(none)"
    settings = json.dumps(lm.settings, sort_keys=True) if lm.settings else ""
    return f"{lm.model} {settings}".strip()


def _diff_scores(a: Any, b: Any) -> list[str]:
    if a is None or b is None:
        return []
    lines = []
    passes_a = " then ".join(p.name for p in a.passes) or "none"
    passes_b = " then ".join(p.name for p in b.passes) or "none"
    if passes_a != passes_b:
        lines.append(f"passes: {passes_a} -> {passes_b}")
    for split in ("train", "val", "test"):
        old_scores, new_scores = getattr(a.scores, split), getattr(b.scores, split)
        old = old_scores.after if old_scores is not None else None
        new = new_scores.after if new_scores is not None else None
        if old != new:
            lines.append(f"score {split}: {pct(old)} -> {pct(new)}")
    return lines
