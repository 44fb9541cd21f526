"""``lmpc show ARTIFACT``: every effect, then the exact prompt each predictor will send.

First every effect running the program can have (LM endpoints and the environment
secrets sent to each, files read, Python code imported), each marked BLOCKED when the
runner's trust (the same flags as ``run``) does not allow it.

Each predictor is rendered by the runtime's own adapter and LM settings, for an input
of placeholders (``<ticket>``), by running its step up to the moment the request would
be sent — so what is shown is what the model gets, not a re-creation of it.
"""

from __future__ import annotations

import json
from typing import Any

import click

from lmpc.cli.common import cli_errors, load_target, pct, runner_trust, trust_options
from lmpc.ir import PredictorIR, ProgramIR


class _Captured(Exception):
    """Stops a step at its first LM request (which it carries)."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class _CaptureClient:
    """An LM client that records the request instead of sending it."""

    def complete(self, request: Any, attribution: Any = None) -> Any:
        raise _Captured(request)


@click.command("show")
@click.argument("target", metavar="ARTIFACT", type=click.Path(dir_okay=False))
@click.option("--program", "program_name", help="Module to show (default: the built one).")
@click.option("--lm", "lm_name", metavar="NAME_OR_MODEL", help="Render for this task model.")
@trust_options
def command(target: str, program_name: str | None, lm_name: str | None) -> None:
    """Print every effect the program can have, then every predictor's prompt."""
    with cli_errors():
        program, module, artifact = load_target(target, program_name)
        from lmpc.compiler.pipeline import make_run_ctx, task_lm_for
        from lmpc.runtime.trust import Trust

        optimize = next((o for o in program.optimizes if o.program == module), None)
        task_lm = task_lm_for(program, optimize, lm_name)
        trust = runner_trust(target)
        if artifact is not None:
            _header(artifact)
        metric = artifact.metric if artifact is not None else (
            optimize.metric if optimize else None)
        _effects(program, module, trust, task_lm, metric, datasets=artifact is None)
        # Rendering stops at a step's first LM request, before any tool is called, and
        # builds no metric: it imports nothing whatever the trust says, so the trust of
        # the render allows the code (a ReAct step checks its tools up front).
        ctx = make_run_ctx(program, _CaptureClient(), task_lm, metric_ctx=False,
                           trust=Trust(allow_tools=True, project=trust.project))
        for predictor in program.predictors_of(module):
            click.echo(render_predictor(program, module, predictor, ctx))
        members = program.ensemble.members if program.ensemble else []
        for number, member in enumerate(members, start=1):
            click.echo(f"### ensemble member {number}/{len(members)} "
                       f"(reduce: {program.ensemble.reduce})\n")
            for predictor in program.predictors_of(module):
                tuned = member.get(predictor.id, predictor)
                click.echo(render_predictor(program, module, tuned, ctx))


def _effects(program: ProgramIR, module: str, trust: Any, task_lm: Any, metric: str | None,
             datasets: bool) -> None:
    """Every effect of running the program, and whether this runner's trust allows it."""
    from lmpc.runtime.effects import program_effects

    effects = program_effects(program, module, trust, task_lm, metric=metric,
                              datasets=datasets)
    click.echo(f"# effects of running {module} (what it may cause; docs/trust.md):")
    for effect in effects:
        click.echo(f"#   {effect.line()}")
    click.echo("")


def _header(artifact: Any) -> None:
    scores = artifact.scores
    click.echo(f"# {artifact.program} (lmpc {artifact.compiler_version}, "
               f"task LM {artifact.task_lm})")
    train = (f"train {pct(scores.train.before)} -> {pct(scores.train.after)}, "
             if scores.train is not None else "")
    click.echo(f"# {train}val {pct(scores.val.before)} -> {pct(scores.val.after)}, "
               f"test {pct(scores.test.before)} -> {pct(scores.test.after)}")
    click.echo(f"# passes: {' then '.join(p.name for p in artifact.passes) or 'none'}")
    from lmpc.cli.tree import render_tree

    for number, record in enumerate(artifact.passes, start=1):
        tree = render_tree(f"pass {number} {record.name}", record.report)
        if tree:
            click.echo("# candidate tree of " + tree[0])
            for line in tree[1:]:
                click.echo("# " + line)
    click.echo("")


def render_predictor(program: ProgramIR, module: str, predictor: PredictorIR, ctx: Any) -> str:
    """A heading and the exact request of ``predictor`` for a placeholder input."""
    from lmpc.runtime.predictors import StepCall, run_predictor

    call = StepCall(program, predictor, ctx, module)
    inputs = {f.name: f"<{f.name}>" for f in predictor.signature.inputs}
    labeled = sum(d.kind == "labeled" for d in predictor.demos)
    demos = (f"{len(predictor.demos)} demos: {labeled} labeled, "
             f"{len(predictor.demos) - labeled} bootstrapped")
    knn = predictor.options.get("knn")
    if isinstance(knn, dict):  # demos are picked per input: show them for a placeholder
        demos = (f"{knn.get('k')} demos picked per input from "
                 f"{len(knn.get('examples', []))} stored examples (shown for a placeholder)")
    head = (f"=== {predictor.id} ({predictor.kind}, {call.lm.model}, adapter "
            f"{call.adapter.name}) — {demos} ===\n--- weights: {describe_weights(call.lm)}")
    try:
        run_predictor(call, inputs)
    except _Captured as captured:
        return f"{head}\n{_request_text(captured.request)}{_left_out(call, program)}\n"
    except Exception as exc:  # a kind that cannot render without real outputs
        return f"{head}\n(cannot render this step without running it: {exc})\n"
    return f"{head}\n(this step sends no LM request)\n"


def _left_out(call: Any, program: ProgramIR) -> str:
    """What the base-model layout leaves out of this prompt, said rather than hidden."""
    if call.adapter.name != "completion":
        return ""
    from lmpc.runtime.adapters.completion import left_out

    notes = left_out(call.predictor.signature, program)
    if not notes:
        return ""
    return ("\n--- not in this base-model prompt (measured not to help the embedded model; "
            "chat prompts have them): " + "; ".join(notes))


def _request_text(request: Any) -> str:
    settings = {k: v for k, v in request.settings.items() if k not in ("api_key", "grammar")}
    lines = [f"--- {request.mode} request, settings {json.dumps(settings, sort_keys=True)}"]
    if request.mode == "text":
        lines.append(request.prompt or "")
    else:
        for message in request.messages or ():
            lines.append(f"--- {message.get('role', '')}")
            lines.append(str(message.get("content", "")))
    if request.settings.get("grammar"):  # its own block: escaped in JSON it is unreadable
        lines += ["--- grammar (GBNF): what the reply may be", request.settings["grammar"]]
    return "\n".join(lines)


def describe_weights(lm: Any) -> str:
    """Which weights an LM runs on: its base model, or how it was tuned."""
    tuned = lm.tuned
    if tuned is None:
        return f"{lm.model} (not tuned)"
    how = tuned.training
    facts = [f"{k} {how[k]}" for k in ("records", "epochs", "learning_rate", "batch_size",
                                       "rank", "alpha", "seed", "steps", "last_loss")
             if k in how]
    trained = f"by {how.get('pass', 'a pass')}" + (f" ({', '.join(facts)})" if facts else "")
    if tuned.adapter is not None:
        return (f"tuned: base {tuned.base} + LoRA adapter sha256 {tuned.adapter.sha256[:16]}..."
                f" ({tuned.adapter.size} bytes), trained locally {trained}")
    return f"tuned: {lm.model}, fine-tuned from {tuned.base} by job {tuned.job}, {trained}"
