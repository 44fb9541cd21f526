# ruff: noqa: E501  (the source below keeps the one-line spelling of the language sketch)
"""Every construct of the language lands in the IR as documented in lmpc/ir.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lmpc.compiler.check.program import check_text
from lmpc.ir import ProgramIR, TypeRef

SOURCE = '''\
import "common.lmp"
lm fast  = "openai/gpt-4o-mini" { temperature: 0.0, max_tokens: 256, num_retries: 3, api_key: env.OPENAI_API_KEY, fallbacks: ["anthropic/claude-3-5-haiku", local], model_type: chat }
class Address { """A postal address."""  street: str "street and number"   zip: str? }
type Label = "spam" | "ham"
signature Triage {
  """Decide how urgent a support ticket is."""
  in  ticket: str            "the customer's message"
  out priority: Priority
  out reason: str            "one sentence"
}
signature Summarize = "ticket: str -> summary: str"
signature Answer = "question: str, passages: list[str] -> answer: str, where: Address, label: Label"
tool search(query: str, k: int = 3) -> list[str] = python "support_tools:search" "Search the help center."
module Other(x: str) -> (y: str) {
  s = predict Summarize(ticket = x)
  return (y = s.summary)
}
module Support(ticket: str, limit: int = 5) -> (priority: Priority, summary: str) {
  """Triage, summarize, look things up."""
  t = chain_of_thought Triage(ticket = ticket)
  s = predict(lm = fast, adapter = json) Summarize(ticket = ticket)
  p = retrieve(corpus = "data/corpus.txt", k = 2)(query = ticket)
  a = react(tools = [search], max_iters = 5) Answer(question = ticket, passages = p.passages)
  b = best_of_n(n = 3, reward = acc, threshold = 1.0) Triage(ticket = ticket)
  r = refine(n = 2) Triage(ticket = t.reason)
  m = multi_chain_comparison(m = 4) Triage(ticket = ticket)
  sub = Other(x = t.reason)
  h = search(query = ticket, k = 2)
  assert len(t.reason) <= 200, "keep the reason to one sentence"
  suggest t.priority != low, "outages are rarely low"
  suggest a.where.zip != "" and b.priority in [high, medium]
  return (priority = t.priority, summary = s.summary)
}
dataset tickets = jsonl "data/tickets.jsonl" { inputs: [ticket]  map: { ticket: "text" }  split: train 0.2, val 0.8, seed 7 }
metric acc = exact_match(priority)
metric f = f1(summary)
metric near = numeric(priority, tolerance = 0.01)
metric rx = regex(summary, pattern = "^[A-Z]")
metric judged = judge(Triage, lm = fast)
metric mix = 0.7 * acc + 0.3 * f
metric custom = python "my_metrics:score"
optimize Support with mix on tickets {
  lm: local   prompt_model: fast   teacher: local   reflection: fast
  budget: calls 2000, usd 1.50
  seed: 7
  threads: 2
  bootstrap_fewshot(max_bootstrapped_demos = 4, max_labeled_demos = 4, teacher = Other)
  then mipro_v2(auto = light)
  then random_search(num_candidate_programs = 3)
  then ensemble(top = 5, reduce = majority)
}
test "outage is high" { Support(ticket = "Site down for all users") expect priority == high, summary contains "down" }
'''

COMMON = 'lm local = "local/gemma-3-270m"\nenum Priority { low, medium, high }\n'


@pytest.fixture
def program(tmp_path: Path) -> ProgramIR:
    (tmp_path / "common.lmp").write_text(COMMON)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.txt").write_text("Passage one.\n\nPassage two.\n")
    (tmp_path / "data" / "tickets.jsonl").write_text(
        '{"text": "down", "priority": "high", "summary": "Down"}\n')
    ir, diags, sources = check_text(SOURCE, str(tmp_path / "main.lmp"))
    assert diags == [], diags
    assert ir is not None and len(sources) == 2
    return ir


def test_sources_and_base_dir(program: ProgramIR, tmp_path: Path) -> None:
    paths = [Path(s.path).name for s in program.sources]
    assert paths == ["common.lmp", "main.lmp"]  # imports first
    common = program.sources[0]
    assert common.sha256 == hashlib.sha256(COMMON.encode()).hexdigest()
    assert program.base_dir == str(tmp_path)


def test_lms(program: ProgramIR) -> None:
    fast = program.lms["fast"]
    assert fast.model == "openai/gpt-4o-mini"
    assert fast.settings == {"temperature": 0.0, "max_tokens": 256, "num_retries": 3,
                             "api_key": {"env": "OPENAI_API_KEY"}}
    assert fast.fallbacks == ["anthropic/claude-3-5-haiku", "local/gemma-3-270m"]
    assert fast.model_type == "chat"
    assert program.lms["local"].model_type is None


def test_types(program: ProgramIR) -> None:
    assert program.enums["Priority"].values == ["low", "medium", "high"]
    addr = program.classes["Address"]
    assert addr.desc == "A postal address."
    assert [(f.name, str(f.type), f.desc) for f in addr.fields] == [
        ("street", "str", "street and number"), ("zip", "str?", None)]
    answer = program.signatures["Answer"]
    assert [str(f.type) for f in answer.outputs] == ["str", "Address", "'spam' | 'ham'"]
    assert answer.outputs[2].type == TypeRef(kind="literal", values=["spam", "ham"])


def test_signatures(program: ProgramIR) -> None:
    triage = program.signatures["Triage"]
    assert triage.instructions == "Decide how urgent a support ticket is."
    assert [(f.name, f.desc) for f in triage.inputs] == [("ticket", "the customer's message")]
    assert [f.name for f in triage.outputs] == ["priority", "reason"]
    summarize = program.signatures["Summarize"]
    assert (summarize.instructions, [f.name for f in summarize.inputs],
            [f.name for f in summarize.outputs]) == (
        "Given the fields `ticket`, produce the fields `summary`.", ["ticket"], ["summary"])
    assert [str(f.type) for f in program.signatures["Answer"].inputs] == ["str", "list[str]"]


def test_tools(program: ProgramIR) -> None:
    tool = program.tools["search"]
    assert tool.import_path == "support_tools:search"
    assert tool.desc == "Search the help center."
    assert [(p.name, str(p.type), p.default) for p in tool.params] == [
        ("query", "str", None), ("k", "int", 3)]
    assert str(tool.returns) == "list[str]"


def test_module_steps(program: ProgramIR) -> None:
    mod = program.modules["Support"]
    assert mod.desc == "Triage, summarize, look things up."
    assert [(f.name, f.default) for f in mod.inputs] == [("ticket", None), ("limit", 5)]
    kinds = [(s.name, s.kind) for s in mod.steps]
    assert kinds == [("t", "predictor"), ("s", "predictor"), ("p", "retrieve"),
                     ("a", "predictor"), ("b", "predictor"), ("r", "predictor"),
                     ("m", "predictor"), ("sub", "call"), ("h", "tool")]
    steps = {s.name: s for s in mod.steps}
    assert steps["t"].predictor == "Support.t"
    assert steps["t"].args["ticket"].kind == "ref" and steps["t"].args["ticket"].path == ["ticket"]
    assert steps["r"].args["ticket"].path == ["t", "reason"]
    assert steps["p"].retrieve.corpus == "data/corpus.txt" and steps["p"].retrieve.k == 2
    assert steps["a"].args["passages"].path == ["p", "passages"]
    assert steps["sub"].module == "Other" and steps["h"].tool == "search"
    assert steps["h"].args["k"].kind == "literal" and steps["h"].args["k"].value == 2
    assert mod.returns["priority"].path == ["t", "priority"]
    assert mod.returns["summary"].path == ["s", "summary"]


def test_predictors(program: ProgramIR) -> None:
    preds = program.predictors
    assert set(preds) == {"Other.s", "Support.t", "Support.s", "Support.a", "Support.b",
                          "Support.r", "Support.m"}
    assert preds["Support.t"].kind == "chain_of_thought"
    assert preds["Support.t"].signature == program.signatures["Triage"]
    assert (preds["Support.s"].lm, preds["Support.s"].adapter) == ("fast", "json")
    assert (preds["Support.t"].lm, preds["Support.t"].adapter) == (None, "auto")
    assert preds["Support.a"].options == {"tools": ["search"], "max_iters": 5}
    assert preds["Support.b"].options == {"n": 3, "reward": "acc", "threshold": 1.0}
    assert preds["Support.r"].options == {"n": 2, "reward": None, "threshold": 1.0}
    assert preds["Support.m"].options == {"m": 4}
    assert [p.id for p in program.predictors_of("Support")][:2] == ["Support.t", "Support.s"]


def test_constraints(program: ProgramIR) -> None:
    steps = {s.name: s for s in program.modules["Support"].steps}
    first, second = steps["t"].constraints
    assert (first.kind, first.message) == ("assert", "keep the reason to one sentence")
    assert first.expr == {"op": "<=", "args": [{"call": "len", "args": [{"ref": ["t", "reason"]}]},
                                               200]}
    assert second.expr == {"op": "!=", "args": [{"ref": ["t", "priority"]}, "low"]}
    # attached to the latest step it reads (b comes after a); default message from source
    (third,) = steps["b"].constraints
    assert third.kind == "suggest"
    assert third.expr["args"][1] == {"op": "in", "args": [{"ref": ["b", "priority"]},
                                                          ["high", "medium"]]}
    assert third.message.startswith("suggest failed: a.where.zip")


def test_datasets(program: ProgramIR, tmp_path: Path) -> None:
    ds = program.datasets["tickets"]
    assert (ds.format, ds.path, ds.inputs, ds.mapping) == (
        "jsonl", "data/tickets.jsonl", ["ticket"], {"ticket": "text"})
    assert (ds.split.train, ds.split.val, ds.split.test, ds.split.seed) == (0.2, 0.8, None, 7)
    data = (tmp_path / "data" / "tickets.jsonl").read_bytes()
    assert ds.sha256 == hashlib.sha256(data).hexdigest()


def test_metrics(program: ProgramIR) -> None:
    m = program.metrics
    assert (m["acc"].kind, m["acc"].field) == ("exact_match", "priority")
    assert (m["f"].kind, m["f"].field) == ("f1", "summary")
    assert m["near"].options == {"tolerance": 0.01}
    assert m["rx"].options == {"pattern": "^[A-Z]"}
    assert (m["judged"].kind, m["judged"].signature, m["judged"].lm) == ("judge", "Triage", "fast")
    assert m["mix"].parts == [(0.7, "acc"), (0.3, "f")]
    assert (m["custom"].kind, m["custom"].import_path) == ("python", "my_metrics:score")


def test_optimize(program: ProgramIR) -> None:
    (opt,) = program.optimizes
    assert (opt.program, opt.metric, opt.dataset) == ("Support", "mix", "tickets")
    assert opt.lms == {"lm": "local", "prompt_model": "fast", "teacher": "local",
                       "reflection": "fast"}
    assert (opt.budget.calls, opt.budget.usd, opt.seed, opt.threads) == (2000, 1.5, 7, 2)
    names = [p.name for p in opt.passes]
    assert names == ["bootstrap_fewshot", "mipro_v2", "bootstrap_random_search", "ensemble"]
    boot = opt.passes[0].params
    assert (boot["max_bootstrapped_demos"], boot["max_labeled_demos"], boot["max_rounds"],
            boot["teacher"]) == (4, 4, 1, "Other")
    assert opt.passes[1].params["auto"] == "light" and opt.passes[1].params["seed"] == 9
    assert opt.passes[3].params == {"size": None, "top": 5, "reduce": "majority"}


def test_tests(program: ProgramIR) -> None:
    (test,) = program.tests
    assert (test.name, test.module, test.inputs) == (
        "outage is high", "Support", {"ticket": "Site down for all users"})
    assert [(e.field, e.op, e.value) for e in test.expect] == [
        ("priority", "==", "high"), ("summary", "contains", "down")]


def test_spans_point_at_the_source(program: ProgramIR) -> None:
    assert program.signatures["Triage"].span.line == 5
    step = program.modules["Support"].steps[0]
    assert (step.span.line, step.span.col) == (20, 3)
    assert Path(program.lms["local"].span.file).name == "common.lmp"


def test_ir_round_trips_through_json(program: ProgramIR) -> None:
    assert ProgramIR.model_validate_json(program.model_dump_json()) == program


def test_env_secret_is_never_resolved(program: ProgramIR, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert "sk-secret" not in program.model_dump_json()


def test_enum_member_descriptions(tmp_path: Path) -> None:
    ir, diags, _ = check_text('enum C { a "first", b }\n', str(tmp_path / "x.lmp"))
    assert diags == [] and ir is not None
    assert ir.enums["C"].descs == {"a": "first"}


def test_optional_and_default_inputs_are_not_required(tmp_path: Path) -> None:
    src = ('tool f(a: int, b: int = 2, c: str? ) -> int = python "m:f"\n'
           'module M(x: int) -> (y: int) {\n  r = f(a = x)\n  return (y = r.result)\n}\n')
    ir, diags, _ = check_text(src, str(tmp_path / "x.lmp"))
    assert diags == [] and ir is not None
    assert ir.modules["M"].steps[0].args["a"].path == ["x"]
