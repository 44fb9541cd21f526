"""``lmpc report``: one self-contained HTML page about a build, read from its artifact.

It shows the score before and after per split, each pass's trajectory (every scored
candidate or trial against the pass's LM requests, with the best-so-far line), the
examples the build fixed and broke on val and test, each predictor's final prompt and
its diff against the unoptimized one, and the LM requests, tokens and cost per pass.

The page needs no network: plots are matplotlib figures inlined as SVG (text kept as
text), styles are inline, there is no script. Everything comes from the artifact, so
a report can be made wherever the artifact is, without the data or the model. Passes
are read through the generic records (``PassRecord.trajectory``, ``usage``,
``candidates``), so a new pass appears with no change here. An artifact that does not
record something (schema version 1) gets a note saying so instead of an empty plot.
"""

from __future__ import annotations

import difflib
import html
import io
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmpc.compiler.artifact import Artifact, PassRecord

MAX_ROWS = 40  # example rows shown per table; the counts cover all of them
COLORS = {"before": "#9aa5b1", "after": "#1f77b4", "best": "#d62728", "point": "#1f77b4"}


def render_report(artifact: Artifact) -> str:
    """The whole page for ``artifact`` (already read and validated)."""
    parts = [
        _header(artifact),
        _scores(artifact),
        _passes(artifact),
        _usage(artifact),
        _examples(artifact),
        _prompts(artifact),
    ]
    title = f"{artifact.program} — lmpc build report"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


# ---------------------------------------------------------------- sections


def _header(a: Artifact) -> str:
    passes = " then ".join(p.name for p in a.passes) or "no passes"
    splits = ", ".join(f"{k} {a.splits[k]}" for k in ("train", "val", "test") if k in a.splits)
    data = ", ".join(f"{d.name} ({d.path}, sha256 {d.sha256[:12]}…)" for d in a.datasets)
    stop = f"<p class=\"warn\">Budget reached: {_e(a.budget_stop)}</p>" if a.budget_stop else ""
    return (f"<header><h1>{_e(a.program)} <small>build report</small></h1>"
            f"<p>lmpc {_e(a.compiler_version)} · schema {a.schema_version} · task LM "
            f"<code>{_e(a.task_lm or '-')}</code> · metric <code>{_e(a.metric or '-')}</code>"
            f" · seed {a.seed}</p><p>Pipeline: <b>{_e(passes)}</b> · splits: {_e(splits)}"
            f"</p><p class=\"muted\">Data: {_e(data or '-')}</p>{stop}</header>")


def _scores(a: Artifact) -> str:
    rows = [(split, getattr(a.scores, split)) for split in ("train", "val", "test")
            if getattr(a.scores, split) is not None]
    rows = [(s, v) for s, v in rows if v.before is not None or v.after is not None]
    if not rows:
        return "<section id=\"scores\"><h2>Score</h2><p>No split was scored.</p></section>"
    table = "".join(
        f"<tr><td>{_e(split)} (n={a.splits.get(split, 0)})</td><td>{_pct(v.before)}</td>"
        f"<td>{_pct(v.after)}</td><td class=\"{_sign(v.before, v.after)}\">"
        f"{_delta(v.before, v.after)}</td></tr>" for split, v in rows)
    svg = _bar_chart([s for s, _ in rows], {"before": [v.before for _, v in rows],
                                            "after": [v.after for _, v in rows]},
                     "score (metric " + (a.metric or "") + ")")
    return (f"<section id=\"scores\"><h2>Score before → after</h2><div class=\"row\">"
            f"<figure class=\"plot\" id=\"plot-scores\">{svg}</figure><table><tr><th>split"
            f"</th><th>before</th><th>after</th><th>change</th></tr>{table}</table></div>"
            "</section>")


def _passes(a: Artifact) -> str:
    if not a.passes:
        return "<section id=\"passes\"><h2>Passes</h2><p>No passes ran.</p></section>"
    baseline = a.scores.val.before if a.scores.val.before is not None else (
        a.scores.train.before if a.scores.train else None)
    blocks = []
    for i, record in enumerate(a.passes, start=1):
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in record.params.items())
        points = record.trajectory
        if points:
            plot = (f"<figure class=\"plot trajectory\" id=\"plot-pass-{i}\">"
                    f"{_trajectory(record, baseline)}</figure>")
            best = max(points, key=lambda t: t.score)
            note = (f"<p>{len(points)} scored candidates/trials; best {_pct(best.score)} "
                    f"({_e(best.label)}) after {best.lm_requests} LM requests.</p>")
        elif record.candidates:
            plot = ""
            note = ("<p>Candidates (no per-candidate LM work recorded): " + ", ".join(
                f"{_e(c.label)} {_pct(c.score)}" for c in record.candidates[:20]) + "</p>")
        else:
            plot = ""
            why = ("this artifact records no trajectories (schema 1): rebuild it with this "
                   "lmpc to see them") if a.schema_version < 2 else \
                "this pass scores no candidates (it sets demos or options directly)"
            note = f"<p class=\"muted\">No trajectory: {why}.</p>"
        stopped = f"<p class=\"warn\">Stopped: {_e(record.stopped)}</p>" if record.stopped \
            else ""
        blocks.append(f"<article class=\"pass\"><h3>{i}. {_e(record.name)}</h3>"
                      f"<p class=\"muted\"><code>{_e(params or 'defaults')}</code> · seed "
                      f"{record.seed} · {record.usage.lm_requests} LM requests</p>"
                      f"{note}{plot}{stopped}</article>")
    return "<section id=\"passes\"><h2>Passes</h2>" + "".join(blocks) + "</section>"


def _usage(a: Artifact) -> str:
    names = [f"{i}. {p.name}" for i, p in enumerate(a.passes, start=1)]
    usages = [p.usage for p in a.passes]
    total = a.usage
    evaluation = {k: getattr(total, k) - sum(getattr(u, k) for u in usages)
                  for k in ("lm_requests", "prompt_tokens", "completion_tokens", "cost_usd",
                            "failures")}
    rows = [(n, u.lm_requests, u.prompt_tokens, u.completion_tokens, u.cost_usd, u.failures)
            for n, u in zip(names, usages, strict=True)]
    rows.append(("evaluations (before/after)", evaluation["lm_requests"],
                 evaluation["prompt_tokens"], evaluation["completion_tokens"],
                 evaluation["cost_usd"], evaluation["failures"]))
    rows.append(("total", total.lm_requests, total.prompt_tokens, total.completion_tokens,
                 total.cost_usd, total.failures))
    table = "".join(f"<tr><td>{_e(r[0])}</td><td>{r[1]}</td><td>{r[2]}</td><td>{r[3]}</td>"
                    f"<td>${r[4]:.4f}</td><td>{r[5]}</td></tr>" for r in rows)
    svg = _hbar_chart([r[0] for r in rows[:-1]], [r[1] for r in rows[:-1]], "LM requests")
    return ("<section id=\"usage\"><h2>LM work per pass</h2><p class=\"muted\">Requests "
            "and tokens count the work whether a reply was new or came from the cache "
            "(so a rebuild reports the same).</p><div class=\"row\">"
            f"<figure class=\"plot\" id=\"plot-usage\">{svg}</figure><table><tr><th>step</th>"
            "<th>LM requests</th><th>prompt tokens</th><th>completion tokens</th>"
            f"<th>cost</th><th>failures</th></tr>{table}</table></div></section>")


def _examples(a: Artifact) -> str:
    if not a.examples:
        why = ("this artifact records no per-example scores (schema 1): rebuild it with "
               "this lmpc") if a.schema_version < 2 else "no split was scored"
        return ("<section id=\"examples\"><h2>Wins and losses</h2>"
                f"<p class=\"muted\">{why}.</p></section>")
    blocks = []
    order = ["train", "val", "test"]
    for split, rows in sorted(a.examples.items(), key=lambda kv: (
            order.index(kv[0]) if kv[0] in order else 3, kv[0])):
        fixed = [r for r in rows if _num(r.after) > _num(r.before)]
        broken = [r for r in rows if _num(r.after) < _num(r.before)]
        kept = sum(1 for r in rows if _num(r.after) == _num(r.before) and _num(r.after) > 0)
        missed = len(rows) - len(fixed) - len(broken) - kept
        blocks.append(
            f"<h3>{_e(split)} <small>({len(rows)} examples)</small></h3>"
            f"<p class=\"counts\"><span class=\"up\">{len(fixed)} fixed</span> · "
            f"<span class=\"down\">{len(broken)} broken</span> · {kept} right before and "
            f"after · {missed} wrong before and after</p>"
            + _example_table(f"{split}-fixed", "Fixed by the build", fixed)
            + _example_table(f"{split}-broken", "Broken by the build", broken))
    return "<section id=\"examples\"><h2>Wins and losses</h2>" + "".join(blocks) + \
        "</section>"


def _example_table(ident: str, title: str, rows: list[Any]) -> str:
    if not rows:
        return f"<p class=\"muted\" id=\"{ident}\">{title}: none.</p>"
    body = "".join(
        f"<tr><td class=\"src\">{_e(r.source)}</td><td>{_e(_short(r.inputs))}</td>"
        f"<td>{_e(_short(r.labels))}</td><td>{_e(_short(r.outputs_before, 'failed'))} "
        f"<small>({_score(r.before)})</small></td><td>{_e(_short(r.outputs_after, 'failed'))}"
        f" <small>({_score(r.after)})</small></td></tr>" for r in rows[:MAX_ROWS])
    more = f"<p class=\"muted\">… and {len(rows) - MAX_ROWS} more.</p>" \
        if len(rows) > MAX_ROWS else ""
    shown = " open" if len(rows) <= 10 else ""  # long lists start folded
    return (f"<details{shown} id=\"{ident}\"><summary>{title} ({len(rows)})</summary><table "
            "class=\"examples\"><tr><th>row</th><th>input</th><th>expected</th><th>before"
            f"</th><th>after</th></tr>{body}</table>{more}</details>")


def _prompts(a: Artifact) -> str:
    program, module = a.ir, a.program
    blocks = []
    for predictor in program.predictors_of(module):
        final = prompt_text(a, predictor)
        original_ir = a.baseline.get(predictor.id)
        if original_ir is None:
            diff = ("<p class=\"muted\">The unoptimized prompt is not recorded in this "
                    "artifact (schema 1): rebuild it with this lmpc for the diff.</p>")
        else:
            original = prompt_text(a, original_ir)
            diff = _diff(original, final)
        changes = _changes(original_ir, predictor)
        blocks.append(
            f"<article class=\"predictor\" id=\"prompt-{_e(predictor.id)}\"><h3>"
            f"{_e(predictor.id)} <small>{_e(predictor.kind)}</small></h3>"
            f"<p>{_e(changes)}</p><h4>Diff against the unoptimized prompt</h4>{diff}"
            f"<details><summary>Final prompt (exactly what is sent, for a placeholder input)"
            f"</summary><pre class=\"prompt\">{_e(final)}</pre></details></article>")
    return "<section id=\"prompts\"><h2>Prompts</h2>" + "".join(blocks) + "</section>"


def _changes(original: Any, final: Any) -> str:
    demos = f"{len(final.demos)} demos ({sum(d.kind == 'labeled' for d in final.demos)} " \
        f"labeled, {sum(d.kind == 'bootstrapped' for d in final.demos)} bootstrapped)"
    knn = final.options.get("knn")
    if isinstance(knn, dict):
        demos = (f"{knn.get('k')} demos picked per input from "
                 f"{len(knn.get('examples', []))} stored examples")
    if original is None:
        return f"Now: {demos}."
    same = original.signature.instructions == final.signature.instructions
    instructions = "instructions unchanged" if same else "instructions rewritten"
    return f"Now: {demos}; {instructions}; unoptimized: {len(original.demos)} demos."


def prompt_text(a: Artifact, predictor: Any) -> str:
    """The request ``predictor`` sends for a placeholder input, rendered by the runtime's
    own adapter (as ``lmpc show`` does; no LM is called, no code imported)."""
    from lmpc.compiler.pipeline import make_run_ctx
    from lmpc.runtime.execute import default_task_lm
    from lmpc.runtime.render import CaptureClient, render_predictor
    from lmpc.runtime.trust import Trust

    program = a.ir
    task_lm = default_task_lm(program, a.task_lm) if a.task_lm else default_task_lm(program)
    ctx = make_run_ctx(program, CaptureClient(), task_lm, metric_ctx=False,
                       trust=Trust(allow_tools=True))
    text = render_predictor(program, a.program, predictor, ctx)
    return text.split("\n", 1)[1] if "\n" in text else text  # without the heading line


def _diff(before: str, after: str) -> str:
    """A unified diff of the two prompts, one line per row, additions and removals
    marked (difflib does the diffing)."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(),
                                      "unoptimized", "built", n=2, lineterm=""))
    if not lines:
        return "<p class=\"muted\">No change.</p>"
    out = []
    for line in lines[:600]:
        kind = "add" if line.startswith("+") and not line.startswith("+++") else \
            "del" if line.startswith("-") and not line.startswith("---") else \
            "hunk" if line.startswith("@@") else "ctx"
        out.append(f"<span class=\"{kind}\">{_e(line)}</span>")
    more = f"\n… {len(lines) - 600} more lines" if len(lines) > 600 else ""
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return (f"<p class=\"counts\"><span class=\"up\">+{added}</span> <span class=\"down\">"
            f"−{removed}</span> lines</p><pre class=\"diff\">" + "".join(out) + more +
            "</pre>")


# ---------------------------------------------------------------- plots (matplotlib)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global backend or state

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lmpc"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or doctype


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", alpha=0.3)


def _bar_chart(labels: list[str], series: dict[str, list[float | None]], ylabel: str) -> str:
    fig, ax = _figure(4.8, 2.8)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=COLORS.get(name))
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(_pct(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1.25)  # room for the legend above the bars
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=len(series))
    _style(ax)
    return _svg(fig)


def _hbar_chart(labels: list[str], values: list[int], xlabel: str) -> str:
    fig, ax = _figure(4.8, 0.5 + 0.45 * max(1, len(labels)))
    ax.barh(range(len(labels)), values, color=COLORS["after"])
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    for i, value in enumerate(values):
        ax.annotate(str(value), (value, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    _style(ax)
    return _svg(fig)


def _trajectory(record: PassRecord, baseline: float | None) -> str:
    """Score of every candidate/trial against the pass's LM requests, and the best so
    far as a step line (the pass's own ``best`` where it reports one: MIPROv2's best is
    its best full evaluation, not its best minibatch)."""
    points = record.trajectory
    xs = [t.lm_requests for t in points]
    ys = [t.score for t in points]
    best: list[float] = []
    for t in points:
        value = t.best if t.best is not None else t.score
        best.append(max(best[-1], value) if best else value)
    fig, ax = _figure(6.4, 3.0)
    ax.scatter(xs, ys, s=18, color=COLORS["point"], alpha=0.75, label=_point_label(points),
               zorder=3)
    ax.step(xs, best, where="post", color=COLORS["best"], linewidth=1.8,
            label="best so far", zorder=4)
    if baseline is not None:
        ax.axhline(baseline, color=COLORS["before"], linestyle="--", linewidth=1,
                   label="unoptimized (val)")
    ax.set_xlabel(f"LM requests of {record.name}")
    ax.set_ylabel("score")
    low = min([*ys, *best, baseline if baseline is not None else 1.0])
    ax.set_ylim(max(0.0, low - 0.1), 1.05)
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    _style(ax)
    return _svg(fig)


def _point_label(points: list[Any]) -> str:
    labels = " ".join(t.label for t in points)
    return "trial (minibatch or full)" if "trial" in labels else "candidate"


# ---------------------------------------------------------------- small helpers


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _num(value: float | None) -> float:
    return 0.0 if value is None else value


def _delta(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{100 * (after - before):+.1f} pts"


def _sign(before: float | None, after: float | None) -> str:
    if before is None or after is None or after == before:
        return ""
    return "up" if after > before else "down"


def _short(values: dict[str, Any] | None, missing: str = "-") -> str:
    if values is None:
        return missing
    if len(values) == 1:
        return _text(next(iter(values.values())))
    return "; ".join(f"{k}: {_text(v)}" for k, v in values.items())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def external_references(page: str) -> list[str]:
    """Every URL the page would load (src, href to another origin, CSS url(), @import):
    the report must have none."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)""", page)
    found += re.findall(r"""url\(\s*["']?((?:https?:)?//[^"')]+)""", page)
    found += re.findall(r"@import\s+[^;]+", page)
    return found


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1180px;padding:0 16px;color:#1d2430;background:#fff}
h1{margin:0 0 4px}h1 small,h3 small{font-weight:normal;color:#6b7785}
h2{border-bottom:2px solid #e3e8ee;padding-bottom:4px;margin-top:32px}
code{background:#f3f5f7;padding:0 3px;border-radius:3px}
.muted{color:#6b7785}.warn{color:#a15c00}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure.plot{margin:0;max-width:100%}figure.plot svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #e3e8ee;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f7f9fb}
table.examples td{max-width:420px;overflow-wrap:anywhere}td.src{white-space:nowrap;color:#6b7785}
.up{color:#16803c;font-weight:600}.down{color:#b42318;font-weight:600}
article{border:1px solid #e3e8ee;border-radius:6px;padding:8px 16px;margin:12px 0}
pre{background:#f7f9fb;border:1px solid #e3e8ee;border-radius:4px;padding:8px;
overflow-x:auto;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap}
pre.diff span{display:block}pre.diff .add{background:#e6ffec;color:#116329}
pre.diff .del{background:#ffebe9;color:#82071e}pre.diff .hunk{color:#6639ba}
summary{cursor:pointer;font-weight:600;margin:6px 0}
"""
