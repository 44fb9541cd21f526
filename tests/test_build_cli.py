"""build / eval / show / diff through click's CliRunner with a scripted LM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from test_pipeline_fixtures import oracle_reply, sentiment_program

from lmpc.cli import main
from lmpc.compiler.artifact import write_artifact
from lmpc.compiler.build import to_artifact
from lmpc.compiler.pipeline import run_optimize
from lmpc.ir import PassIR
from lmpc.runtime.lm import LMClient
from lmpc.runtime.scripted import ScriptedTransport, render_request


def _few_shot_only(request: Any) -> str:
    """Right only when the prompt has demos, so optimization visibly helps."""
    prompt = render_request(request)
    right = oracle_reply(prompt)
    if prompt.count("The movie was") > 1:
        return " " + right
    return " " + ("negative" if right == "positive" else "positive")


def _transport() -> ScriptedTransport:
    return ScriptedTransport(fn=_few_shot_only)


def _built(tmp_path: Path, name: str = "a.json", k: int = 3) -> Path:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": k})])
    client = LMClient(_transport(), sleep=lambda s: None)
    result = run_optimize(program, program.optimizes[0], client=client)
    return write_artifact(to_artifact(result, 0), tmp_path / "build" / name)


def _unoptimized(tmp_path: Path) -> Path:
    program = sentiment_program(tmp_path)
    client = LMClient(_transport(), sleep=lambda s: None)
    result = run_optimize(program, program.optimizes[0], client=client)
    return write_artifact(to_artifact(result, 0), tmp_path / "build" / "zero.json")


def _invoke(args: list[str], transport: Any = None) -> Any:
    runner = CliRunner()
    return runner.invoke(main, args, obj={"transport": transport or _transport()})


def _rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    rows = [{"text": "The movie was superb.", "label": "positive"},
            {"text": "The movie was dull.", "label": "negative"},
            {"text": "The movie was nice.", "label": "positive"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_artifact_json(tmp_path: Path) -> None:
    artifact = _built(tmp_path)
    result = _invoke(["eval", str(artifact), "--data", str(_rows(tmp_path)), "--json",
                      "--no-cache"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"score": 1.0, "n": 3, "failures": 0,
                                    "retries": 0, "lm_failures": 0}
    zero = _invoke(["eval", str(_unoptimized(tmp_path)), "--data", str(_rows(tmp_path)),
                    "--json", "--no-cache"])
    assert json.loads(zero.stdout)["score"] == 0.0


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    artifact = _built(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": "positive"}\n{"nope": 1}\n')
    result = _invoke(["eval", str(artifact), "--data", str(bad), "--no-cache"])
    assert result.exit_code == 1
    assert "bad.jsonl:2: missing input field(s) 'text'" in result.stderr
    assert "Traceback" not in result.output
    result = _invoke(["eval", str(artifact), "--data", str(_rows(tmp_path)), "--metric", "nah"])
    assert result.exit_code == 1 and "unknown metric 'nah'" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "program": "X"}')
    result = _invoke(["eval", str(broken), "--data", str(_rows(tmp_path))])
    assert result.exit_code == 1 and "invalid artifact" in result.stderr


def test_eval_refuses_python_metric_of_an_artifact(tmp_path: Path) -> None:
    artifact = _built(tmp_path)
    data = json.loads(artifact.read_text())
    data["ir"]["metrics"]["acc"] = {"name": "acc", "kind": "python",
                                    "import_path": "mine:score"}
    artifact.write_text(json.dumps(data))
    result = _invoke(["eval", str(artifact), "--data", str(_rows(tmp_path)), "--no-cache"])
    assert result.exit_code == 1 and "imports metric acc: mine:score" in result.stderr
    assert "--allow-tools" in result.stderr


def test_show_prints_the_exact_prompt_with_demos(tmp_path: Path) -> None:
    transport = _transport()
    result = _invoke(["show", str(_built(tmp_path))], transport)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "=== Classify.p (predict, scripted/fake, adapter completion)" in out
    assert "3 demos: 3 labeled, 0 bootstrapped" in out
    assert "Classify the review." in out and "Text: <text>" in out
    assert out.count("The movie was") == 3  # the three demos, verbatim
    assert "val 0.0% -> 100.0%" in out
    assert transport.requests == []  # showing calls no LM


def test_show_prints_the_grammar_a_base_model_is_held_to(tmp_path: Path) -> None:
    artifact = _built(tmp_path)
    data = json.loads(artifact.read_text())
    for lm in data["ir"]["lms"].values():
        lm["grammar"] = True  # as for a llama.cpp server; the embedded model's default
    artifact.write_text(json.dumps(data))
    result = _invoke(["show", str(artifact)], _transport())
    assert result.exit_code == 0, result.output
    settings_line = next(x for x in result.stdout.splitlines() if x.startswith("--- text"))
    assert "grammar" not in settings_line  # not escaped into the settings' JSON
    block = result.stdout.split("--- grammar (GBNF): what the reply may be\n", 1)[1]
    assert block.startswith('root ::= " "? v0 "\\n"?\nv0 ::= ( "positive" | "negative" )')


def test_diff_shows_demos_and_scores(tmp_path: Path) -> None:
    zero, built = _unoptimized(tmp_path), _built(tmp_path, "b.json", k=2)
    result = _invoke(["diff", str(zero), str(built)])
    assert result.exit_code == 0, result.output
    assert "ir.predictors[Classify.p].demos: 0 -> 2 demos" in result.stdout
    assert result.stdout.count("  + [labeled]") == 2
    assert "passes: none -> labeled_fewshot" in result.stdout
    assert "score test: 0.0% -> 100.0%" in result.stdout
    same = _invoke(["diff", str(built), str(built)])
    assert same.stdout.strip() == "no differences"


def test_diff_shows_instruction_changes(tmp_path: Path) -> None:
    a = _built(tmp_path, "a.json")
    data = json.loads(a.read_text())
    data["ir"]["predictors"]["Classify.p"]["signature"]["instructions"] = "Say the sentiment."
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    out = _invoke(["diff", str(a), str(b)]).stdout
    assert "instructions" in out and "-Classify the review." in out
    assert "+Say the sentiment." in out




SOURCE = '''\
lm fake = "scripted/fake" { temperature: 0.0, model_type: "text" }

enum Sentiment { positive, negative }

signature Judge {
  """Classify the review."""
  in  text: str
  out label: Sentiment
}

module Classify(text: str) -> (label: Sentiment) {
  p = predict Judge(text = text)
  return (label = p.label)
}

dataset reviews = jsonl "reviews.jsonl" {
  inputs: [text]
  split: train 0.4, val 0.3, test 0.3, seed 3
}

metric acc = exact_match(label)

optimize Classify with acc on reviews {
  lm: fake
  seed: 1
  labeled_fewshot(k = 3)
}
'''


def _source(tmp_path: Path) -> Path:
    from test_pipeline_fixtures import write_rows

    write_rows(tmp_path)
    path = tmp_path / "classify.lmp"
    path.write_text(SOURCE)
    return path


def _needs_checker() -> None:
    try:
        from lmpc.compiler.check.program import load_program  # noqa: F401
    except ImportError:
        import pytest

        pytest.skip("the checker (lmpc.compiler.check.program) is not available")


def test_build_json_writes_the_artifact_and_reuses_the_cache(tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    _needs_checker()
    monkeypatch.chdir(tmp_path)
    source = _source(tmp_path)
    args = ["build", str(source), "--json", "--cache-dir", str(tmp_path / "cache")]
    first = _invoke(args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["program"] == "Classify" and summary["artifact"] == "build/Classify.json"
    assert summary["scores"] == {"val": {"before": 0.0, "after": 1.0},
                                 "test": {"before": 0.0, "after": 1.0}}
    assert summary["lm_calls"] == 24 and summary["cache_hits"] == 0
    assert {"tokens", "cost_usd", "seconds"} <= set(summary)
    built = (tmp_path / "build" / "Classify.json").read_bytes()
    second = _invoke(args)
    again = json.loads(second.stdout)
    assert again["lm_calls"] == 0 and again["cache_hits"] == 24
    assert (tmp_path / "build" / "Classify.json").read_bytes() == built


def test_build_summary_table_and_progress(tmp_path: Path) -> None:
    _needs_checker()
    out = tmp_path / "x.json"
    result = _invoke(["build", str(_source(tmp_path)), "-o", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert f"built Classify -> {out}" in result.stdout
    assert "0.0%" in result.stdout and "100.0%" in result.stdout
    assert "labeled_fewshot" in result.stderr  # progress names the pass
    assert out.is_file()


def test_a_train_only_dataset_reports_trainset_scores(tmp_path: Path) -> None:
    _needs_checker()
    source = _source(tmp_path)
    source.write_text(SOURCE.replace("split: train 0.4, val 0.3, test 0.3, seed 3", ""))
    out = tmp_path / "x.json"
    result = _invoke(["build", str(source), "-o", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "train (n=20)" in result.stdout and "scored on the trainset" in result.stdout
    summary = _invoke(["build", str(source), "-o", str(out), "--no-cache", "--json"])
    assert json.loads(summary.stdout)["scores"]["train"] == {"before": 0.0, "after": 1.0}
    from lmpc.compiler.artifact import read_artifact

    assert read_artifact(out).scores.train.after == 1.0
    shown = _invoke(["show", str(out)])
    assert "# train 0.0% -> 100.0%, val -" in shown.stdout


TWO_BLOCKS = """
optimize quick = Classify with acc on reviews {
  lm: fake
  labeled_fewshot(k = 1)
}
"""


def test_named_optimize_blocks_build_one_at_a_time(tmp_path: Path, monkeypatch: Any) -> None:
    _needs_checker()
    monkeypatch.chdir(tmp_path)
    source = _source(tmp_path)
    source.write_text(SOURCE + TWO_BLOCKS)
    result = _invoke(["build", str(source), "--optimize", "quick", "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["program"], summary["optimize"], summary["artifact"]) == (
        "Classify", "quick", "build/quick.json")
    from lmpc.compiler.artifact import read_artifact

    built = read_artifact(tmp_path / "build" / "quick.json")
    assert [(o.name, [p.params for p in o.passes]) for o in built.ir.optimizes] == [
        ("quick", [{"k": 1, "sample": True, "stratify": True}])]
    # one -o for the chosen block is fine; both blocks into one -o is refused
    one = _invoke(["build", str(source), "--optimize", "quick", "--no-cache", "-o",
                   str(tmp_path / "q.json")])
    assert one.exit_code == 0 and (tmp_path / "q.json").is_file()
    both = _invoke(["build", str(source), "--no-cache", "-o", str(tmp_path / "x.json")])
    assert both.exit_code == 1 and "--optimize NAME" in both.stderr
    unknown = _invoke(["build", str(source), "--optimize", "quik", "--no-cache"])
    assert unknown.exit_code == 1
    assert "no optimize block named 'quik' (named blocks: quick)" in unknown.stderr


def test_two_unnamed_blocks_of_one_module_are_not_built_over_each_other(
        tmp_path: Path, monkeypatch: Any) -> None:
    _needs_checker()
    monkeypatch.chdir(tmp_path)
    source = _source(tmp_path)
    source.write_text(SOURCE + TWO_BLOCKS.replace("quick = ", ""))
    transport = _transport()
    result = _invoke(["build", str(source), "--no-cache"], transport)
    assert result.exit_code == 1 and transport.requests == []
    assert "would both write build/Classify.json; name them" in result.stderr


def test_a_dataset_given_as_split_files_is_built_on_exactly_those_files(
        tmp_path: Path) -> None:
    _needs_checker()
    source = _source(tmp_path)
    rows = (tmp_path / "reviews.jsonl").read_text().splitlines(keepends=True)
    for name, part in (("train", rows[:8]), ("dev", rows[8:14]), ("test", rows[14:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(part))
    source.write_text(SOURCE.replace(
        'dataset reviews = jsonl "reviews.jsonl" {\n  inputs: [text]\n'
        '  split: train 0.4, val 0.3, test 0.3, seed 3\n}',
        'dataset reviews = jsonl {\n  train: "train.jsonl"\n  dev: "dev.jsonl"\n'
        '  test: "test.jsonl"\n  inputs: [text]\n}'))
    out = tmp_path / "x.json"
    transport = _transport()
    result = _invoke(["build", str(source), "-o", str(out), "--no-cache", "--json"], transport)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"] == {"train": 8, "val": 6, "test": 6}
    # the test split is the test file's rows, no others
    test_texts = {json.loads(line)["text"] for line in rows[14:]}
    asked = [render_request(r) for r in transport.requests]
    assert sum(any(t in a.rsplit("Text:", 1)[-1] for t in test_texts) for a in asked) == 12
    from lmpc.compiler.artifact import read_artifact

    records = read_artifact(out).datasets
    assert [(r.part, r.rows, Path(r.path).name) for r in records] == [
        ("train", 8, "train.jsonl"), ("val", 6, "dev.jsonl"), ("test", 6, "test.jsonl")]


def test_build_dry_run_calls_no_lm(tmp_path: Path) -> None:
    _needs_checker()
    transport = _transport()
    result = _invoke(["build", str(_source(tmp_path)), "--dry-run", "-o",
                      str(tmp_path / "never.json")], transport)
    assert result.exit_code == 0, result.output
    assert "labeled_fewshot" in result.stdout and "k=3, sample=true" in result.stdout
    assert "~12 LM calls" in result.stdout and "total projected: ~24" in result.stdout
    assert transport.requests == [] and not (tmp_path / "never.json").exists()


def test_build_errors_are_one_clear_line(tmp_path: Path) -> None:
    _needs_checker()
    source = _source(tmp_path)
    (tmp_path / "reviews.jsonl").write_text('{"text": "a", "label": "positive"}\n{oops\n')
    result = _invoke(["build", str(source), "--no-cache", "-o", str(tmp_path / "a.json")])
    assert result.exit_code == 1
    # the checker reads every row, as the build does: a bad one is a located diagnostic
    assert "reviews.jsonl:2:2: error[E1404]" in result.stderr and "invalid JSON" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "a.json").exists()
    missing = _invoke(["build", str(tmp_path / "nope.lmp")])
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_ctrl_c_mid_build_leaves_no_artifact(tmp_path: Path) -> None:
    _needs_checker()
    calls = {"n": 0}

    def interrupt_later(request: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 15:
            raise KeyboardInterrupt
        return _few_shot_only(request)

    out = tmp_path / "a.json"
    result = _invoke(["build", str(_source(tmp_path)), "-o", str(out), "--cache-dir",
                      str(tmp_path / "cache")], ScriptedTransport(fn=interrupt_later))
    assert result.exit_code == 1 and "interrupted: no artifact written" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".a.json*"))
    rerun = _invoke(["build", str(_source(tmp_path)), "-o", str(out), "--json",
                     "--cache-dir", str(tmp_path / "cache")])
    assert json.loads(rerun.stdout)["cache_hits"] >= 10  # finished calls were not paid twice


def test_progress_reporter_lines_and_running_best() -> None:
    import io

    from lmpc.cli.progress import ProgressReporter
    from lmpc.compiler.passes.base import PassStarted, Progress

    stream = io.StringIO()
    report = ProgressReporter(stream=stream, interactive=False)
    name = "bootstrap_random_search"
    report(PassStarted(name, 1, 3, projected=120, requests=160))
    report(Progress(name, "candidate", 1, 4, "seed=-3", score=0.5, finished=True))
    report(Progress(name, "candidate", 2, 4, "seed=0", score=0.25, requests=40,
                    examples=16, finished=True))
    report(Progress("evaluate after (val)", "examples", 3, 9))  # not a step end: quiet
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "(pass 2/3)" in lines[0] and "~120 LM calls" in lines[0]
    assert "candidate 2/4 seed=0" in lines[2] and "score 25.0%" in lines[2]
    assert "best 50.0%" in lines[2] and "16 examples" in lines[2] and "40 calls" in lines[2]
    assert "eta ~" in lines[2]  # 40 of the 160 projected requests sent
    tty = io.StringIO()
    live = ProgressReporter(stream=tty, interactive=True, width=160)
    live(PassStarted("p", 0, 1, projected=10))
    live(Progress("p", "trial", 3, 10, score=1.0, requests=5, finished=True))
    live.close()
    drawn = tty.getvalue()
    assert "p (1/1)" in drawn and "5/10" in drawn and "trial 3/10" in drawn


def test_show_and_eval_an_ensemble_artifact(tmp_path: Path) -> None:
    passes = [PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 1}),
              PassIR(name="ensemble", params={"size": 2})]
    program = sentiment_program(tmp_path, passes=passes)
    client = LMClient(_transport(), sleep=lambda s: None)
    result = run_optimize(program, program.optimizes[0], client=client)
    artifact = write_artifact(to_artifact(result, 0), tmp_path / "ens.json")
    shown = _invoke(["show", str(artifact)])
    assert shown.exit_code == 0, shown.output
    assert "### ensemble member 1/2 (reduce: majority)" in shown.stdout
    assert "passes: bootstrap_random_search then ensemble" in shown.stdout
    scored = _invoke(["eval", str(artifact), "--data", str(_rows(tmp_path)), "--json",
                      "--no-cache"])
    assert json.loads(scored.stdout)["score"] == result.scores["test"]["after"] == 1.0


def test_a_source_file_runs_the_unoptimized_program(tmp_path: Path) -> None:
    _needs_checker()
    source = _source(tmp_path)
    scored = _invoke(["eval", str(source), "--data", str(_rows(tmp_path)), "--json",
                      "--no-cache"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout) == {"score": 0.0, "n": 3, "failures": 0,
                                    "retries": 0, "lm_failures": 0}  # zero-shot
    shown = _invoke(["show", str(source)])
    assert "0 demos" in shown.stdout and "Text: <text>" in shown.stdout


def test_eval_reads_rows_in_the_columns_of_the_programs_dataset(tmp_path: Path) -> None:
    program = sentiment_program(tmp_path, passes=[PassIR(name="labeled_fewshot",
                                                         params={"k": 3})])
    client = LMClient(_transport(), sleep=lambda s: None)
    art = to_artifact(run_optimize(program, program.optimizes[0], client=client), 0)
    art.ir.datasets["reviews"].mapping = {"text": "review"}  # as if declared `map: {...}`
    artifact = write_artifact(art, tmp_path / "build" / "mapped.json")
    rows = tmp_path / "columns.jsonl"
    rows.write_text(json.dumps({"review": "The movie was superb.", "label": "positive"}) + "\n")
    result = _invoke(["eval", str(artifact), "--data", str(rows), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"score": 1.0, "n": 1, "failures": 0,
                                    "retries": 0, "lm_failures": 0}


def test_show_says_what_the_base_model_layout_leaves_out(tmp_path: Path) -> None:
    _needs_checker()
    source = _source(tmp_path)
    source.write_text(SOURCE.replace("enum Sentiment { positive, negative }",
                                     'enum Sentiment { positive "likes it", negative }')
                      .replace("in  text: str", 'in  text: str "the review"'))
    shown = _invoke(["show", str(source)])
    assert shown.exit_code == 0, shown.output
    assert ("not in this base-model prompt (measured not to help the embedded model; chat "
            "prompts have them): the description of input 'text'; the value descriptions "
            "of enum Sentiment (output 'label')") in shown.stdout
    assert "likes it" not in shown.stdout.split("--- not in")[0]
