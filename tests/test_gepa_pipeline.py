"""gepa in a real build: composed with other passes, in the artifact, shown and diffed.

``bootstrap_fewshot then gepa then ensemble`` runs through the CLI on a scripted chat
model (the world of ``test_pass_gepa.py``: an instruction's ``level N`` decides which
texts the classifier gets right; the reflection LM writes one level higher). The same
seed gives a byte-identical artifact; ``lmpc show`` draws the candidate tree and
``lmpc diff`` names a changed one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))
sys.path.insert(0, str(Path(__file__).parent))

from test_pass_gepa import make_answer  # noqa: E402
from world import World  # noqa: E402

from lmpc.cli import main  # noqa: E402

SOURCE = """\
lm m = "openai/gpt-4o-mini" { temperature: 0.0 }

signature Sentiment {
  \"\"\"Classify the sentiment.\"\"\"
  in text: str
  out label: str
}

module Classify(text: str) -> (label: str) {
  c = predict Sentiment(text = text)
  return (label = c.label)
}

dataset days = jsonl "days.jsonl" {
  inputs: [text]
  split: train 12, val 8, test 8, seed 3
}

metric acc = exact_match(label)

optimize Classify with acc on days {
  lm: m
  seed: 1
  bootstrap_fewshot(max_bootstrapped_demos = 0, max_labeled_demos = 0)
  then %(middle)s
  then ensemble(top = 2)
}
"""


def project(folder: Path, calls: int = 100, seed: int = 0, middle: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"text": f"good day {i}" if i % 3 else f"bad day {i}",
             "label": "positive" if i % 3 else "negative"} for i in range(28)]
    (folder / "days.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "days.lmp"
    middle = middle or f"gepa(max_metric_calls = {calls}, use_merge = false, seed = {seed})"
    path.write_text(SOURCE % {"middle": middle})
    return path


def build(source: Path, out: Path) -> dict:
    world = World(answer=make_answer(step=1))
    result = CliRunner().invoke(main, ["build", str(source), "--no-cache", "--quiet",
                                       "--json", "-o", str(out)],
                                obj={"transport": world.transport})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_composed_build_is_reproducible_and_readable(tmp_path: Path) -> None:
    source = project(tmp_path / "p")
    first = build(source, tmp_path / "a.json")
    build(source, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first["scores"]["val"]["after"] >= first["scores"]["val"]["before"]
    artifact = json.loads((tmp_path / "a.json").read_text())
    names = [p["name"] for p in artifact["passes"]]
    assert names == ["bootstrap_fewshot", "gepa", "ensemble"]
    tree = artifact["passes"][1]["report"]["tree"]
    assert len(tree) >= 2 and tree[1]["parents"] == [0]
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "a.json")])
    assert shown.exit_code == 0, shown.output
    assert "# candidate tree of pass 2 gepa:" in shown.output
    assert "reflection on Classify.c" in shown.output

    other = project(tmp_path / "q", calls=40)
    build(other, tmp_path / "c.json")
    diffed = CliRunner().invoke(main, ["diff", str(tmp_path / "a.json"),
                                       str(tmp_path / "c.json")])
    assert "pass 2 gepa candidate tree:" in diffed.output, diffed.output


def test_simba_composes_and_is_reproducible(tmp_path: Path) -> None:
    source = project(tmp_path / "p", middle="simba(bsize = 6, num_candidates = 2, "
                     "max_steps = 2, max_demos = 2)")
    first = build(source, tmp_path / "a.json")
    build(source, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first["scores"]["val"]["after"] >= first["scores"]["val"]["before"]
    artifact = json.loads((tmp_path / "a.json").read_text())
    assert [p["name"] for p in artifact["passes"]] == ["bootstrap_fewshot", "simba",
                                                       "ensemble"]
    assert artifact["passes"][1]["report"]["steps"]
