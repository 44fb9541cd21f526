"""The candidate trees of reflective passes (``gepa``), as ``lmpc show``/``diff`` print them.

A pass report with a ``tree`` (see ``lmpc.compiler.passes.gepa``) lists every candidate
with its parents, its per-example val scores and how it was made. Each candidate is
drawn under its first parent, with the instruction that changed from that parent.

>>> tree = [{"index": 0, "parents": [], "origin": "seed", "val_score": 0.25,
...          "val_scores": [0, 1, 0, 0], "best_on": 1, "instructions": {"M.c": "Classify."}},
...         {"index": 1, "parents": [0], "origin": "reflection", "val_score": 0.75,
...          "val_scores": [1, 1, 1, 0], "best_on": 3, "instructions": {"M.c": "Label it."},
...          "reflection": {"predictor": "M.c", "minibatch_scores": [0, 0, 1]}}]
>>> print("\\n".join(render_tree("gepa", {"tree": tree, "best": {"index": 1}})))
gepa: 2 candidates, best #1 (val 75.0%)
  #0 seed: val 25.0%, best on 1/4
      └ #1 reflection on M.c (minibatch 0.00 0.00 1.00): val 75.0%, best on 3/4  <- best
          M.c: "Label it."
"""

from __future__ import annotations

from typing import Any

MAX_TEXT = 240


def render_tree(pass_name: str, report: dict[str, Any]) -> list[str]:
    """Readable lines for the candidate tree in ``report`` (none when it has no tree)."""
    nodes = {int(n["index"]): n for n in report.get("tree") or []}
    if not nodes:
        return []
    best = (report.get("best") or {}).get("index")
    head = f"{pass_name}: {len(nodes)} candidates"
    if best is not None and best in nodes:
        head += f", best #{best} (val {_pct(nodes[best].get('val_score'))})"
    if report.get("metric_calls"):
        head += f", {report['metric_calls']} metric calls"
    if report.get("stopped"):
        head += f", stopped: {report['stopped']}"
    lines = [head]
    children: dict[int | None, list[int]] = {}
    for i, node in sorted(nodes.items()):
        parents = [p for p in node.get("parents") or [] if p in nodes]
        children.setdefault(parents[0] if parents else None, []).append(i)

    def walk(i: int, depth: int) -> None:
        node = nodes[i]
        lines.append("  " + "    " * depth + ("└ " if depth else "") + _line(node, best))
        parents = [p for p in node.get("parents") or [] if p in nodes]
        before = nodes[parents[0]]["instructions"] if parents else {}
        for pid, text in sorted(node.get("instructions", {}).items()):
            if parents and before.get(pid) != text:
                lines.append("  " + "    " * depth + f"    {pid}: \"{_clip(text)}\"")
        for child in children.get(i, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return lines


def _line(node: dict[str, Any], best: int | None) -> str:
    origin = node.get("origin", "")
    parents = node.get("parents") or []
    what = f"#{node['index']} {origin}"
    if origin == "merge":
        what += " of " + " + ".join(f"#{p}" for p in parents)
    reflection = node.get("reflection") or {}
    if reflection:
        what += f" on {reflection.get('predictor')}"
        scores = reflection.get("minibatch_scores")
        if scores:
            what += " (minibatch " + " ".join(f"{float(s):.2f}" for s in scores) + ")"
    n = len(node.get("val_scores") or [])
    text = f"{what}: val {_pct(node.get('val_score'))}"
    if n:
        text += f", best on {node.get('best_on', 0)}/{n}"
    return text + ("  <- best" if node["index"] == best else "")


def tree_summary(report: dict[str, Any]) -> str | None:
    """``N candidates, best #i (x%)`` for ``lmpc diff``'s summary; None without a tree."""
    nodes = report.get("tree") or []
    if not nodes:
        return None
    best = report.get("best") or {}
    return (f"{len(nodes)} candidates, best #{best.get('index')} "
            f"({_pct(best.get('val_score'))})")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
