"""``lmpc show ARTIFACT``: every effect, then the exact prompt each predictor will send.

First every effect running the program can have (LM endpoints and the environment
secrets sent to each, files read, Python code imported), each marked BLOCKED when the
runner's trust (the same flags as ``run``) does not allow it.

Each predictor is rendered by the runtime's own adapter and LM settings, for an input
of placeholders (``<ticket>``), by running its step up to the moment the request would
be sent — so what is shown is what the model gets, not a re-creation of it.
"""

from __future__ import annotations

from typing import Any

import click

from lmpc.cli.common import cli_errors, load_target, pct, runner_trust, trust_options
from lmpc.ir import ProgramIR
from lmpc.runtime.render import CaptureClient, render_predictor


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
        ctx = make_run_ctx(program, CaptureClient(), task_lm, metric_ctx=False,
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
