"""Every pass reports progress: typed events through the pass context, drawn by the CLI.

Each implemented pass runs through the real driver with a scripted model; it must send
``PassStarted`` (with the dry-run projection), ``Progress`` events carrying its own name
(stage, i of n, the LM requests sent so far) with at least one finished unit of work,
and ``PassFinished``. The CLI turns them into plain lines when stderr is not a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_pipeline_fixtures import oracle_reply, sentiment_program

from lmpc.compiler.passes.base import PassFinished, PassStarted, Progress
from lmpc.compiler.pipeline import run_optimize
from lmpc.ir import PassIR
from lmpc.runtime.lm import LMClient
from lmpc.runtime.scripted import ScriptedTransport, render_request

PASSES = {
    "labeled_fewshot": {"k": 2},
    "bootstrap_fewshot": {"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
    "bootstrap_random_search": {"num_candidate_programs": 1, "max_bootstrapped_demos": 2},
    "knn_fewshot": {"k": 2},
    "copro": {"breadth": 2, "depth": 1},
    "mipro_v2": {"auto": None, "num_candidates": 3, "num_trials": 2, "minibatch_size": 3,
                 "storage": "memory"},
}


def reply(request: Any) -> str:
    prompt = render_request(request)
    if "Proposed Instruction:" in prompt or "instruction" in prompt.rsplit("\n", 2)[-1].lower():
        return " Decide whether the movie review is positive or negative."
    return " " + oracle_reply(prompt)


@pytest.mark.parametrize("name", [*PASSES, "ensemble"])
def test_every_pass_emits_typed_progress(tmp_path: Path, name: str) -> None:
    passes = [PassIR(name=name, params=PASSES.get(name, {}))]
    if name == "ensemble":
        passes = [PassIR(name="bootstrap_random_search",
                         params=PASSES["bootstrap_random_search"]),
                  PassIR(name="ensemble", params={"top": 2})]
    program = sentiment_program(tmp_path, passes=passes)
    events: list[Any] = []
    client = LMClient(ScriptedTransport(fn=reply), sleep=lambda s: None)
    run_optimize(program, program.optimizes[0], client=client, progress=events.append)
    started = [e for e in events if isinstance(e, PassStarted) and e.pass_name == name]
    assert len(started) == 1 and started[0].projected is not None
    steps = [e for e in events if isinstance(e, Progress) and e.pass_name == name]
    assert steps and any(e.finished for e in steps)
    assert all(e.stage and (e.total is None or e.done <= e.total) for e in steps)
    finished = [e for e in events if isinstance(e, PassFinished) and e.pass_name == name]
    assert len(finished) == 1
    if name not in ("labeled_fewshot", "ensemble"):  # the passes that call the LM
        assert finished[0].requests > 0
        assert steps[-1].requests == finished[0].requests or steps[-1].requests > 0
    order = [events.index(started[0]), events.index(steps[0]), events.index(finished[0])]
    assert order == sorted(order)


def test_evaluations_report_examples_as_they_go(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot")])
    events: list[Any] = []
    client = LMClient(ScriptedTransport(fn=reply), sleep=lambda s: None)
    run_optimize(program, program.optimizes[0], client=client, progress=events.append)
    evals = [e for e in events if isinstance(e, Progress) and e.pass_name.startswith(
        "evaluate before")]
    assert evals and evals[-1].done == evals[-1].total == evals[-1].examples


def test_cli_prints_plain_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    from lmpc.cli import main

    rows = [{"text": f"The movie was {'great' if i % 2 else 'awful'} {i}.",
             "label": "positive" if i % 2 else "negative"} for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = tmp_path / "p.lmp"
    src.write_text('''lm fake = "scripted/fake" { model_type: "text" }
enum Sentiment { positive, negative }
signature Judge { in text: str  out label: Sentiment }
module Classify(text: str) -> (label: Sentiment) {
  p = predict Judge(text = text)
  return (label = p.label)
}
dataset d = jsonl "d.jsonl" { inputs: [text]  split: train 6, val 3, test 3 }
metric acc = exact_match(label)
optimize Classify with acc on d {
  lm: fake
  bootstrap_random_search(num_candidate_programs = 1, max_bootstrapped_demos = 2)
}
''')
    transport = ScriptedTransport(fn=reply)
    result = CliRunner().invoke(main, ["build", str(src), "-o", str(tmp_path / "a.json"),
                                       "--no-cache"], obj={"transport": transport})
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any("bootstrap_random_search (pass 1/1) · projected ~" in line for line in lines)
    candidates = [line for line in lines if "· candidate " in line and "best" in line]
    assert len(candidates) == 4  # seeds -3, -2, -1, 0: one line each
    assert "candidate 4/4" in candidates[-1] and "calls" in candidates[-1]
    assert any("bootstrap_random_search done" in line for line in lines)
