"""Every construct of the language parses into the expected AST (spans included)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lmpc.grammar import ast as A
from lmpc.grammar.parser import parse

FIXTURE = Path(__file__).parent / "fixtures" / "grammar" / "full.lmp"


def one(src: str) -> A.Node:
    """The single declaration of ``src`` (which must parse)."""
    tree, diags = parse(src, "t.lmp")
    assert diags == [], diags
    assert tree is not None and len(tree.decls) == 1
    return tree.decls[0]


def s(v: str) -> A.Literal:
    return A.Literal(v)


def r(*path: str) -> A.Ref:
    return A.Ref(list(path))


def n(name: str, *args: A.TypeExpr) -> A.NamedType:
    return A.NamedType(name, list(args))


def test_import() -> None:
    assert one('import "common.lmp"') == A.Import("common.lmp")


def test_lm_with_settings_env_and_fallbacks() -> None:
    d = one('lm fast = "openai/gpt-4o-mini" { temperature: 0.0, max_tokens: 256, '
            'api_key: env.OPENAI_API_KEY, fallbacks: ["anthropic/claude-3-5-haiku"], '
            'stream: false, }')
    assert d == A.LMDecl("fast", "openai/gpt-4o-mini", [
        A.Option("temperature", A.Literal(0.0)),
        A.Option("max_tokens", A.Literal(256)),
        A.Option("api_key", A.EnvRef("OPENAI_API_KEY")),
        A.Option("fallbacks", A.ListExpr([s("anthropic/claude-3-5-haiku")])),
        A.Option("stream", A.Literal(False)),
    ])
    assert isinstance(d.options[1].value.value, int)
    assert one('lm local = "local/gemma-3-270m"') == A.LMDecl("local", "local/gemma-3-270m")


def test_enum_with_descriptions_and_optional_commas() -> None:
    d = one('enum Priority { """How urgent."""  low "can wait", medium high, }')
    assert d == A.EnumDecl("Priority", [A.EnumMember("low", "can wait"), A.EnumMember("medium"),
                                        A.EnumMember("high")], doc="How urgent.")


def test_class_with_doc_descriptions_and_optional_fields() -> None:
    d = one('class Address { """A postal address."""  street: str "street and number"   '
            'zip: str?  lines: list[str] }')
    assert d == A.ClassDecl("Address", [
        A.ClassField("street", n("str"), "street and number"),
        A.ClassField("zip", A.OptionalType(n("str"))),
        A.ClassField("lines", n("list", n("str"))),
    ], doc="A postal address.")


@pytest.mark.parametrize("src, expected", [
    ('"spam" | "ham"', A.LiteralType(["spam", "ham"])),
    ("dict[str, list[Address]]?", A.OptionalType(n("dict", n("str"), n("list", n("Address"))))),
    ('("a" | "b")?', A.OptionalType(A.LiteralType(["a", "b"]))),
    ("1 | 2 | true", A.LiteralType([1, 2, True])),
    ("outer.Inner", n("outer.Inner")),
])
def test_type_expressions(src: str, expected: A.TypeExpr) -> None:
    assert one(f"type T = {src}") == A.TypeAlias("T", expected)


def test_signature_block_form() -> None:
    d = one('signature Triage {\n  """Decide how urgent a support ticket is."""\n'
            '  in  ticket: str  "the customer\'s message"\n  out priority: Priority\n'
            '  out reason "one sentence"\n}')
    assert d == A.SignatureDecl("Triage", [
        A.SigField("in", "ticket", n("str"), "the customer's message"),
        A.SigField("out", "priority", n("Priority")),
        A.SigField("out", "reason", None, "one sentence"),
    ], doc="Decide how urgent a support ticket is.")
    assert [f.name for f in d.inputs] == ["ticket"]
    assert [f.name for f in d.outputs] == ["priority", "reason"]
    assert (d.fields[1].span.line, d.fields[1].span.col) == (4, 3)


def test_signature_string_form_fields_point_inside_the_string() -> None:
    d = one('signature QA = "question, context: list[str] -> answer: int"')
    assert d.text == "question, context: list[str] -> answer: int"
    assert d.fields == [A.SigField("in", "question"),
                        A.SigField("in", "context", n("list", n("str"))),
                        A.SigField("out", "answer", n("int"))]
    assert [(f.span.line, f.span.col) for f in d.fields] == [(1, 17), (1, 27), (1, 49)]


def test_multiline_docstring_is_dedented() -> None:
    d = one('module M() -> () {\n  """First line.\n\n    Indented more.\n  Back.\n  """\n}')
    assert d.doc == "First line.\n\n  Indented more.\nBack."


def test_tool() -> None:
    d = one('tool search(query: str, k: int = 3) -> list[str] = python "support_tools:search" '
            '"Search the help center."')
    assert d == A.ToolDecl("search", [A.Param("query", n("str")),
                                      A.Param("k", n("int"), A.Literal(3))],
                           n("list", n("str")), "support_tools:search", "Search the help center.")
    bare = one('tool now() = python "tools:now"')
    assert bare == A.ToolDecl("now", [], None, "tools:now")


def test_module_steps_constraints_and_return() -> None:
    d = one('''module Support(ticket: str) -> (priority: Priority, summary: str) {
  """Triage then summarize."""
  t = chain_of_thought Triage(ticket = ticket)
  s = predict(lm = fast, adapter = json) Summarize(ticket = ticket)
  a = react(tools = [search], max_iters = 5) Answer(question = ticket)
  b = best_of_n(n = 3, reward = acc, threshold = 1.0) Triage(ticket = ticket)
  c = refine(n = 2) Triage(ticket = ticket)
  m = multi_chain_comparison(m = 3) Triage(ticket = ticket)
  p = retrieve(corpus = "data/corpus.txt", k = 3)(query = ticket)
  sub = OtherModule(x = t.reason)
  assert len(t.reason) <= 200, "keep the reason to one sentence"
  suggest t.priority != low
  return (priority = t.priority, summary = s.summary)
}''')
    assert isinstance(d, A.ModuleDecl) and d.doc == "Triage then summarize."
    assert d.inputs == [A.Param("ticket", n("str"))]
    assert [p.name for p in d.outputs] == ["priority", "summary"]
    kinds = [st.value.kind for st in d.body[:6]]
    assert kinds == ["chain_of_thought", "predict", "react", "best_of_n", "refine",
                     "multi_chain_comparison"]
    assert d.body[1].value == A.PredictorCall(
        "predict", "Summarize", [A.Arg("ticket", r("ticket"))],
        [A.Arg("lm", r("fast")), A.Arg("adapter", r("json"))])
    assert d.body[6] == A.Step("p", A.Retrieve(
        [A.Arg("corpus", s("data/corpus.txt")), A.Arg("k", A.Literal(3))],
        [A.Arg("query", r("ticket"))]))
    assert d.body[7] == A.Step("sub", A.Call("OtherModule", [A.Arg("x", r("t", "reason"))]))
    assert d.body[8] == A.Constraint("assert", A.BinaryOp(
        "<=", A.FuncCall("len", [r("t", "reason")]), A.Literal(200)),
        "keep the reason to one sentence")
    assert d.body[9] == A.Constraint("suggest", A.BinaryOp("!=", r("t", "priority"), r("low")))
    assert d.body[10] == A.Return([A.Arg("priority", r("t", "priority")),
                                   A.Arg("summary", r("s", "summary"))])
    assert (d.body[0].span.line, d.body[0].span.col, d.body[0].span.end_col) == (3, 3, 47)


def test_expression_precedence() -> None:
    d = one('module M() -> () { assert not a or b and c in [1, 2], "m" '
            'suggest (a or b) and x matches "^y$" and s contains "z" }')
    first, second = d.body
    assert first.expr == A.BinaryOp("or", A.UnaryOp("not", r("a")), A.BinaryOp(
        "and", r("b"), A.BinaryOp("in", r("c"), A.ListExpr([A.Literal(1), A.Literal(2)]))))
    assert second.expr == A.BinaryOp("and", A.BinaryOp(
        "and", A.BinaryOp("or", r("a"), r("b")), A.BinaryOp("matches", r("x"), s("^y$"))),
        A.BinaryOp("contains", r("s"), s("z")))


def test_dataset_with_inputs_mapping_and_split() -> None:
    d = one('dataset tickets = jsonl "data/tickets.jsonl" {\n  inputs: [ticket]\n'
            '  map: { ticket: "text", "priority": "label" }\n'
            '  split: train 0.2, val 0.8, seed 7\n}')
    assert d == A.DatasetDecl("tickets", "jsonl", "data/tickets.jsonl", [
        A.Option("inputs", A.ListExpr([r("ticket")])),
        A.Option("map", A.DictExpr([A.DictItem("ticket", s("text")),
                                    A.DictItem("priority", s("label"))])),
        A.Option("split", A.Pairs([A.Pair("train", A.Literal(0.2)), A.Pair("val", A.Literal(0.8)),
                                   A.Pair("seed", A.Literal(7))])),
    ])
    assert d.option("split").span.line == 4
    assert one('dataset d = csv "d.csv"') == A.DatasetDecl("d", "csv", "d.csv")


@pytest.mark.parametrize("src, expected", [
    ("exact_match(priority)", A.MetricCall("exact_match", [A.Arg(None, r("priority"))])),
    ("numeric(answer, tolerance = 0.01)",
     A.MetricCall("numeric", [A.Arg(None, r("answer")), A.Arg("tolerance", A.Literal(0.01))])),
    ('regex(answer, pattern = "^\\\\d+$")',
     A.MetricCall("regex", [A.Arg(None, r("answer")), A.Arg("pattern", s("^\\d+$"))])),
    ("judge(JudgeSig, lm = fast)",
     A.MetricCall("judge", [A.Arg(None, r("JudgeSig")), A.Arg("lm", r("fast"))])),
    ("0.7 * acc + 0.3 * f", A.MetricSum([A.MetricTerm(A.Literal(0.7), "acc"),
                                         A.MetricTerm(A.Literal(0.3), "f")])),
    ("acc + f", A.MetricSum([A.MetricTerm(A.Literal(1), "acc"), A.MetricTerm(A.Literal(1), "f")])),
    ('python "my_metrics:score"', A.PythonRef("my_metrics:score")),
])
def test_metrics(src: str, expected: A.MetricValue) -> None:
    assert one(f"metric m = {src}") == A.MetricDecl("m", expected)


def test_optimize_pipeline() -> None:
    d = one('''optimize Support with acc on tickets {
  lm: local
  prompt_model: fast
  budget: calls 2000, usd 1.50
  seed: 7
  bootstrap_fewshot(max_bootstrapped_demos = 4, max_labeled_demos = 4)
  then mipro_v2(auto = light)
  then ensemble(top = 5, reduce = majority)
}''')
    assert (d.program, d.metric, d.dataset) == ("Support", "acc", "tickets")
    assert [o.key for o in d.options] == ["lm", "prompt_model", "budget", "seed"]
    assert d.option("budget").value == A.Pairs([A.Pair("calls", A.Literal(2000)),
                                                A.Pair("usd", A.Literal(1.5))])
    assert d.passes == [
        A.PassCall("bootstrap_fewshot", [A.Arg("max_bootstrapped_demos", A.Literal(4)),
                                         A.Arg("max_labeled_demos", A.Literal(4))]),
        A.PassCall("mipro_v2", [A.Arg("auto", r("light"))]),
        A.PassCall("ensemble", [A.Arg("top", A.Literal(5)), A.Arg("reduce", r("majority"))]),
    ]
    assert (d.passes[1].span.line, d.passes[1].span.col) == (7, 8)


def test_an_optimize_block_may_be_named() -> None:
    d = one("optimize quick = Support with acc on tickets { copro }")
    assert (d.name, d.program, d.metric, d.dataset) == ("quick", "Support", "acc", "tickets")
    assert one("optimize Support with acc on tickets { copro }").name is None


def test_a_pass_without_parameters_may_be_written_bare() -> None:
    d = one("optimize M with acc on d {\n  copro\n  then mipro_v2\n  threads: 2\n"
            "  then ensemble()\n}")
    assert [(p.name, p.args, p.parens) for p in d.passes] == [
        ("copro", [], False), ("mipro_v2", [], False), ("ensemble", [], True)]
    assert [o.key for o in d.options] == ["threads"]
    assert (d.passes[1].span.line, d.passes[1].span.col) == (3, 8)


def test_test_block() -> None:
    d = one('test "outage is high" { Support(ticket = "Site down") '
            'expect priority == high, summary contains "down" expect len(summary) > 3 }')
    assert d == A.TestDecl("outage is high", A.Call("Support", [A.Arg("ticket", s("Site down"))]),
                           [A.BinaryOp("==", r("priority"), r("high")),
                            A.BinaryOp("contains", r("summary"), s("down")),
                            A.BinaryOp(">", A.FuncCall("len", [r("summary")]), A.Literal(3))])


def test_strings_escapes_and_keywords_as_names() -> None:
    d = one('lm in = "a\\"b\\\\c\\n\\u00e9" { with: on, then: "x" }')
    assert d.name == "in" and d.model == 'a"b\\c\né'
    assert d.options == [A.Option("with", r("on")), A.Option("then", s("x"))]


def test_comments_are_kept_with_positions() -> None:
    tree, _ = parse('// head\nenum P { a /* mid */ } // tail\n', "t.lmp")
    assert [(c.text, c.span.line, c.span.col) for c in tree.comments] == [
        ("// head", 1, 1), ("/* mid */", 2, 12), ("// tail", 2, 24)]


def test_full_fixture_parses_every_construct() -> None:
    tree, diags = parse(FIXTURE.read_text(), str(FIXTURE))
    assert diags == []
    kinds = {type(d).__name__ for d in tree.decls}
    assert kinds == {"Import", "LMDecl", "EnumDecl", "ClassDecl", "TypeAlias", "SignatureDecl",
                     "ToolDecl", "ModuleDecl", "DatasetDecl", "MetricDecl", "OptimizeDecl",
                     "TestDecl"}
    assert all(d.span.file == str(FIXTURE) for d in tree.decls)
    assert len(tree.of_type(A.MetricDecl)) == 6


def test_walk_visits_nested_nodes() -> None:
    d = one("module M() -> () { t = predict S(x = a.b) }")
    assert any(isinstance(x, A.Ref) and x.path == ["a", "b"] for x in d.walk())


def test_empty_file_is_valid() -> None:
    tree, diags = parse("// nothing here\n", "t.lmp")
    assert diags == [] and tree.decls == [] and len(tree.comments) == 1


def test_parsing_5000_lines_is_fast() -> None:
    src = FIXTURE.read_text()
    big = src * (5000 // src.count("\n") + 1)
    parse(big[:2000], "warm.lmp")
    start = time.process_time()
    tree, diags = parse(big, "big.lmp")
    elapsed = time.process_time() - start
    assert diags == [] and len(tree.decls) > 1000
    assert elapsed < 5.0  # loose for loaded CI machines; bench/ reports the real number


def test_keywords_are_names_where_no_keyword_fits() -> None:
    d = one("signature in { in in: str  out out: list[str] }")
    assert d == A.SignatureDecl("in", [A.SigField("in", "in", n("str")),
                                       A.SigField("out", "out", n("list", n("str")))])
    assert one("enum Dir { in, out, module }").members[2].name == "module"
    d = one("optimize then with with on on { seed: 1 a() then then(y = 2) }")
    assert (d.program, d.metric, d.dataset) == ("then", "with", "on")
    assert [p.name for p in d.passes] == ["a", "then"]


def test_spans_cover_keywords_and_brackets() -> None:
    d = one('module M(x: str) -> (y: str) {\n  t = predict S(x = x)\n}')
    assert (d.span.line, d.span.col, d.span.end_line, d.span.end_col) == (1, 1, 3, 2)
    call = d.body[0].value
    assert (call.span.col, call.span.end_col) == (7, 23)
    assert (d.inputs[0].span.col, d.inputs[0].span.end_col) == (10, 16)
