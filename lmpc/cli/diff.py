"""``lmpc diff A B``: every change between two artifacts, readable in a terminal.

The whole artifact is compared, field by field — nothing is chosen to be shown, so no
change can hide from review (an added tool step, an endpoint, a metric turned into a
Python callable, a changed ``returns``). Each change names its path in the artifact
(``ir.predictors[Router.c].demos``); instructions and other long text show as a unified
diff, lists of demos as items added and removed, everything else as ``old -> new``.
Changes of source positions only (spans) come last. A short summary of the scores and
passes leads. Either side may be a ``.lmp`` source (its unoptimized program); then only
the program is compared.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import click

from lmpc.cli.common import cli_errors, load_target, pct

MAX_ITEMS = 20  # added/removed items shown per list
MAX_VALUE = 160  # characters of a value shown
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@click.command("diff")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
def command(a: str, b: str) -> None:
    """Show what changed from artifact A to artifact B."""
    with cli_errors():
        left, art_a = _tree(a)
        right, art_b = _tree(b)
    if art_a is None or art_b is None:  # a source has no provenance to compare
        left = {k: left[k] for k in ("program", "ir")}
        right = {k: right[k] for k in ("program", "ir")}
    lines = diff_trees(left, right)
    if lines and art_a is not None and art_b is not None:
        lines = _summary(art_a, art_b) + lines
    click.echo("\n".join(lines) if lines else "no differences")


def _tree(target: str) -> tuple[dict[str, Any], Any]:
    """The JSON tree of an artifact as loaded (base_dir resolved), or of a source's IR."""
    program, module, artifact = load_target(target, None)
    if artifact is not None:
        return artifact.model_dump(mode="json"), artifact
    return {"program": module, "ir": program.model_dump(mode="json")}, None


# ---------------------------------------------------------------- the generic walk


def diff_trees(old: Any, new: Any) -> list[str]:
    """Readable lines for every difference between two JSON trees (spans last)."""
    changes: list[tuple[str, Any, Any]] = []
    _walk(old, new, "", changes)
    main = [c for c in changes if not _is_span(c[0])]
    spans = [c for c in changes if _is_span(c[0])]
    lines: list[str] = []
    for path, a, b in main:
        lines += _render(path, a, b)
    if spans:
        lines.append(f"source positions ({len(spans)} changed):")
        lines += ["  " + line for path, a, b in spans for line in _render(path, a, b)]
    return lines


_MISSING = object()


def _walk(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *[k for k in new if k not in old]]:
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), _join(path, key), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new) and not _is_demos(path):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _walk(a, b, f"{path}[{i}]", out)
        elif old != new:
            out.append((path, old, new))
        return
    if old is new or (type(old) is type(new) and old == new):
        return
    out.append((path, old, new))


def _join(path: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


def _is_span(path: str) -> bool:
    return path.endswith(".span") or ".span." in path


def _is_demos(path: str) -> bool:
    return path.endswith(".demos")


def _render(path: str, old: Any, new: Any) -> list[str]:
    if old is _MISSING:
        return [f"{path}: added {_short(new)}"]
    if new is _MISSING:
        return [f"{path}: removed (was {_short(old)})"]
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old + new or
                                                         path.endswith("instructions")):
        body = difflib.unified_diff(old.splitlines(), new.splitlines(), "before", "after",
                                    lineterm="", n=1)
        return [f"{path}:"] + ["    " + line for line in body]
    if isinstance(old, list) and isinstance(new, list):
        return _render_list(path, old, new)
    return [f"{path}: {_short(old)} -> {_short(new)}"]


def _render_list(path: str, old: list[Any], new: list[Any]) -> list[str]:
    """Items removed and added, by value (a reordering shows as the order changing)."""
    before = [_key(v) for v in old]
    after = [_key(v) for v in new]
    removed = [v for v, k in zip(old, before, strict=True) if k not in after]
    added = [v for v, k in zip(new, after, strict=True) if k not in before]
    what = "demos" if _is_demos(path) else "items"
    lines = [f"{path}: {len(old)} -> {len(new)} {what}"]
    if not removed and not added:
        lines[0] += " (same items, order or count changed)"
    for sign, items in (("-", removed), ("+", added)):
        for item in items[:MAX_ITEMS]:
            lines.append(f"  {sign} {_item(item)}")
        if len(items) > MAX_ITEMS:
            lines.append(f"  {sign} ... and {len(items) - MAX_ITEMS} more")
    return lines


def _item(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"values", "kind"}:  # a demo
        return f"[{value['kind']}] {_short(value['values'])}"
    return _short(value)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


# ---------------------------------------------------------------- the summary


def _summary(a: Any, b: Any) -> list[str]:
    lines = []
    passes_a = " then ".join(p.name for p in a.passes) or "none"
    passes_b = " then ".join(p.name for p in b.passes) or "none"
    if passes_a != passes_b:
        lines.append(f"passes: {passes_a} -> {passes_b}")
    from lmpc.cli.tree import tree_summary

    for number, (pa, pb) in enumerate(zip(a.passes, b.passes, strict=False), start=1):
        old_tree, new_tree = tree_summary(pa.report), tree_summary(pb.report)
        if (old_tree or new_tree) and old_tree != new_tree:
            lines.append(f"pass {number} {pb.name} candidate tree: {old_tree or 'none'} -> "
                         f"{new_tree or 'none'}")
    for split in ("train", "val", "test"):
        old_scores, new_scores = getattr(a.scores, split), getattr(b.scores, split)
        old = old_scores.after if old_scores is not None else None
        new = new_scores.after if new_scores is not None else None
        if old != new:
            lines.append(f"score {split}: {pct(old)} -> {pct(new)}")
    lines += _weights_summary(a, b)
    return lines + (["changes:"] if lines else [])


def _weights_summary(a: Any, b: Any) -> list[str]:
    """A predictor whose weights changed (tuned, retrained, back to the base model)."""
    from lmpc.runtime.render import describe_weights

    def weights(art: Any) -> dict[str, Any]:
        out = {}
        for pid, pred in art.ir.predictors.items():
            lm = art.ir.lms.get(pred.lm or art.task_lm or "")
            if lm is not None:
                out[pid] = lm
        return out

    old, new = weights(a), weights(b)
    lines = []
    for pid in sorted(set(old) | set(new)):
        x, y = old.get(pid), new.get(pid)
        if _weights_key(x) != _weights_key(y):
            lines.append(f"weights of {pid}: "
                         f"{describe_weights(x) if x is not None else 'none'} -> "
                         f"{describe_weights(y) if y is not None else 'none'}")
    return lines


def _weights_key(lm: Any) -> Any:
    """What a predictor's weights are: its model and, when tuned locally, the adapter."""
    if lm is None:
        return None
    return (lm.model, lm.tuned.adapter.sha256 if lm.tuned and lm.tuned.adapter else None)
