"""Every checker error code, asserted with its line and column (small inline sources).

Each case is a module body appended to PRELUDE, which declares a little of everything;
line numbers in the table are relative to the case's own text (PRELUDE_LINES is added).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmpc.compiler.check.program import check_text, load_program

PRELUDE = """\
lm fast = "openai/gpt-4o-mini"
enum P { low, high }
signature S { in q: str  out a: P  out n: int }
tool t(x: int) -> str = python "m:f"
dataset d = jsonl "d.jsonl" { inputs: [q] }
metric acc = exact_match(a)
"""
PRELUDE_LINES = PRELUDE.count("\n")

GOOD_MODULE = """\
module M(q: str) -> (a: P) {
  x = predict S(q = q)
  return (a = x.a)
}
"""

CASES: list[tuple[str, str, str, int, int]] = [
    # (id, source after PRELUDE, code, line, col)
    ("missing import", 'import "nope.lmp"', "E1001", 1, 1),
    ("duplicate declaration", 'signature S = "q -> a"', "E1101", 1, 11),
    ("built-in type name", "enum str { a }", "E1101", 1, 6),
    ("duplicate step", "module M(q: str) -> () {\n  x = predict S(q = q)\n"
     "  x = predict S(q = q)\n}", "E1101", 3, 3),
    ("duplicate optimize name", "optimize q = M with acc on d { copro }\n"
     "optimize q = M with acc on d { copro }\n" + GOOD_MODULE, "E1101", 2, 10),
    ("duplicate field", "signature T { in q: str  in q: str  out a: str }", "E1102", 1, 29),
    ("duplicate enum value", "enum Q { a, b, a }", "E1102", 1, 16),
    ("alias cycle", "type A = B\ntype B = A", "E1104", 1, 1),
    ("unknown lm", "module M(q: str) -> () {\n  x = predict(lm = fats) S(q = q)\n}",
     "E1201", 2, 20),
    ("unknown lm role", "optimize M with acc on d {\n  teacher: slow\n}\n" + GOOD_MODULE,
     "E1201", 2, 12),
    ("unknown signature", "module M(q: str) -> () {\n  x = predict Ss(q = q)\n}",
     "E1202", 2, 15),
    ("unknown callee", "module M(q: str) -> () {\n  x = Other(q = q)\n}", "E1203", 2, 7),
    ("unknown module in optimize", "optimize Mm with acc on d { }\n" + GOOD_MODULE,
     "E1203", 1, 10),
    ("unknown tool", "module M(q: str) -> () {\n  x = react(tools = [tt]) S(q = q)\n}",
     "E1204", 2, 22),
    ("unknown type", "signature T { in q: strr  out a: str }", "E1205", 1, 21),
    ("bad type arguments", "signature T { in q: list[str, int]  out a: str }", "E1205", 1, 21),
    ("Optional with two arguments", "signature T { in q: Optional[str, int]  out a: str }",
     "E1205", 1, 21),
    ("Literal of a type", "signature T { in q: Literal[str]  out a: str }", "E1205", 1, 29),
    ("ellipsis outside a tuple", "signature T { in q: list[...]  out a: str }", "E1205", 1, 26),
    ("None alone", 'signature T = "q: None -> a"', "E1205", 1, 19),
    ("list as a dict key", "signature T { in q: dict[list[str], int]  out a: str }",
     "E1205", 1, 26),
    ("nested Python type", 'signature T = "q: Container.Query -> a"', "E1205", 1, 19),
    ("DSPy image", 'signature T = "image: dspy.Image -> caption"', "E1213", 1, 23),
    ("DSPy history", "signature T { in h: History  out a: str }", "E1213", 1, 21),
    ("DSPy tool", 'signature T = "q, tools: list[dspy.Tool] -> a"', "E1213", 1, 31),
    ("a Python set", "signature T { in q: set[str]  out a: str }", "E1213", 1, 21),
    ("unknown metric", "optimize M with ac on d { }\n" + GOOD_MODULE, "E1206", 1, 17),
    ("unknown built-in metric", "metric m = exact_mach(a)", "E1206", 1, 12),
    ("unknown dataset", "optimize M with acc on dd { }\n" + GOOD_MODULE, "E1207", 1, 24),
    ("unknown optimizer", "optimize M with acc on d {\n  copr()\n}\n" + GOOD_MODULE,
     "E1208", 2, 3),
    ("unknown optimizer parameter",
     "optimize M with acc on d {\n  copro(bredth = 3)\n}\n" + GOOD_MODULE, "E1209", 2, 9),
    ("unknown predictor option", "module M(q: str) -> () {\n  x = predict(temp = 1) S(q = q)\n}",
     "E1209", 2, 15),
    ("unknown dataset option", 'dataset e = jsonl "d.jsonl" { input: [q] }', "E1209", 1, 31),
    ("unknown name", "module M(q: str) -> () {\n  x = predict S(q = z)\n}", "E1210", 2, 21),
    ("unknown step field", "module M(q: str) -> (a: P) {\n  x = predict S(q = q)\n"
     "  return (a = x.aa)\n}", "E1211", 3, 15),
    ("step used without field", "module M(q: str) -> (a: P) {\n  x = predict S(q = q)\n"
     "  return (a = x)\n}", "E1211", 3, 15),
    ("unknown test output", "test \"t\" { M(q = \"x\") expect b == low }\n" + GOOD_MODULE,
     "E1211", 1, 30),
    ("enum value not a member", "module M(q: str) -> () {\n  x = predict S(q = q)\n"
     "  assert x.a != medium\n}", "E1211", 3, 17),
    ("step used before defined", "module M(q: str) -> () {\n  x = predict S(q = y.a)\n"
     "  y = predict S(q = q)\n}", "E1212", 2, 21),
    ("missing argument", "module M(q: str) -> () {\n  x = predict S()\n}", "E1301", 2, 7),
    ("react without tools", "module M(q: str) -> () {\n  x = react S(q = q)\n}",
     "E1301", 2, 7),
    ("unknown argument", "module M(q: str) -> () {\n  x = predict S(q = q, k = q)\n}",
     "E1302", 2, 24),
    ("str into int", "module M(q: str) -> () {\n  x = t(x = q)\n}", "E1303", 2, 13),
    ("enum into unrelated enum", "enum Q { low, mid }\nsignature T { in p: Q  out a: str }\n"
     "module M(q: str) -> () {\n  x = predict S(q = q)\n  y = predict T(p = x.a)\n}",
     "E1303", 5, 21),
    ("int into enum return", "module M(q: str) -> (a: P) {\n  x = predict S(q = q)\n"
     "  return (a = x.n)\n}", "E1303", 3, 15),
    ("literal not an enum value", "test \"t\" { M(q = \"x\") expect a == mid }\n"
     + GOOD_MODULE, "E1303", 1, 35),
    ("missing return", "module M(q: str) -> (a: P) {\n  x = predict S(q = q)\n}",
     "E1304", 1, 8),
    ("return misses an output", "module M(q: str) -> (a: P, n: int) {\n"
     "  x = predict S(q = q)\n  return (a = x.a)\n}", "E1304", 3, 3),
    ("return of an undeclared output", "module M(q: str) -> (a: P) {\n"
     "  x = predict S(q = q)\n  return (a = x.a, b = q)\n}", "E1304", 3, 20),
    ("statement after return", "module M(q: str) -> () {\n  return ()\n"
     "  x = predict S(q = q)\n}", "E1304", 3, 3),
    ("signature without outputs", "signature T { in q: str }", "E1304", 1, 11),
    ("module recursion", "module A(q: str) -> () {\n  b = B(q = q)\n}\n"
     "module B(q: str) -> () {\n  a = A(q = q)\n}", "E1305", 5, 7),
    ("unknown constraint function", "module M(q: str) -> () {\n  x = predict S(q = q)\n"
     "  assert size(x.n) < 3\n}", "E1306", 3, 10),
    ("constraint reads no step", "module M(q: str) -> () {\n  x = predict S(q = q)\n"
     "  assert len(q) < 3\n}", "E1306", 3, 10),
    ("bad adapter", "module M(q: str) -> () {\n  x = predict(adapter = xml) S(q = q)\n}",
     "E1307", 2, 25),
    ("prefix with a colon inside", 'signature T { in q: str prefix "Q: the" out a: str }',
     "E1307", 1, 25),
    ("bad max_iters", "module M(q: str) -> () {\n  x = react(tools = [t], max_iters = 0)"
     " S(q = q)\n}", "E1307", 2, 38),
    ("missing dataset file", 'dataset e = jsonl "nope.jsonl"', "E1401", 1, 19),
    ("missing corpus file", "module M(q: str) -> () {\n"
     '  r = retrieve(corpus = "nope.txt")(query = q)\n}', "E1401", 2, 25),
    ("dataset inputs not module inputs", 'dataset e = jsonl "d.jsonl" { inputs: [a] }\n'
     "optimize M with acc on e { }\n" + GOOD_MODULE, "E1402", 2, 24),
    ("bad split", 'dataset e = jsonl "d.jsonl" { split: train 1.5 }', "E1403", 1, 44),
    ("split ratios over 1", 'dataset e = jsonl "d.jsonl" { split: train 0.6, val 0.6 }',
     "E1403", 1, 38),
    ("dataset with no file", "dataset e = jsonl { inputs: [q] }", "E1403", 1, 9),
    ("a file and split files", 'dataset e = jsonl "d.jsonl" { train: "d.jsonl" }',
     "E1403", 1, 19),
    ("split of split files with a val file", 'dataset e = jsonl {\n  train: "d.jsonl"\n'
     '  val: "d.jsonl"\n  split: train 1\n}', "E1403", 4, 3),
    ("val and dev both", 'dataset e = jsonl {\n  val: "d.jsonl"\n  dev: "d.jsonl"\n}',
     "E1403", 3, 3),
    ("missing split file", 'dataset e = jsonl {\n  train: "d.jsonl"\n  test: "t.jsonl"\n}',
     "E1401", 3, 9),
    ("bad dataset format", 'dataset e = yaml "d.jsonl"', "E1403", 1, 13),
    ("missing column", 'dataset e = jsonl "d.jsonl" { inputs: [q]  map: { q: "text" } }',
     "E1404", 1, 40),
    ("metric field not an output", "metric m = f1(answer)\noptimize M with m on d { }\n"
     + GOOD_MODULE, "E1501", 1, 15),
    ("bad regex", 'metric m = regex(a, pattern = "(")', "E1502", 1, 31),
    ("metric cycle", "metric m = 0.5 * acc + 0.5 * m", "E1502", 1, 24),
    ("optimizer parameter type", "optimize M with acc on d {\n  copro(breadth = \"x\")\n}\n"
     + GOOD_MODULE, "E1601", 2, 19),
    ("optimizer parameter range", "optimize M with acc on d {\n  copro(depth = 0)\n}\n"
     + GOOD_MODULE, "E1602", 2, 17),
    ("optimizer choice", "optimize M with acc on d {\n  mipro_v2(auto = lite)\n}\n"
     + GOOD_MODULE, "E1602", 2, 19),
    ("optimizer conflict", "optimize M with acc on d {\n  mipro_v2(num_trials = 3)\n}\n"
     + GOOD_MODULE, "E1603", 2, 25),
    ("bad budget", "optimize M with acc on d {\n  budget: calls 0\n}\n" + GOOD_MODULE,
     "E1604", 2, 17),
    ("bad expectation", "test \"t\" { M(q = \"x\") expect a in [low] }\n" + GOOD_MODULE,
     "E1701", 1, 30),
]


def _diags(tmp_path: Path, body: str) -> list[tuple[str, int, int]]:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n{"q": "yo", "a": "high"}\n')
    (tmp_path / "m").mkdir(exist_ok=True)
    _, diags, _ = check_text(PRELUDE + body + "\n", str(tmp_path / "main.lmp"))
    return [(d.code, d.span.line - PRELUDE_LINES, d.span.col) for d in diags
            if d.severity == "error"]


@pytest.mark.parametrize(("body", "code", "line", "col"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_code_line_and_column(tmp_path: Path, body: str, code: str, line: int,
                                    col: int) -> None:
    found = _diags(tmp_path, body)
    assert (code, line, col) in found, found


def test_specified_but_unimplemented_pass(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # every specified pass may be implemented by now: pretend one is not
    import lmpc.compiler.check.optimize as check_optimize

    monkeypatch.setattr(check_optimize, "pass_available", lambda name: name != "gepa")
    body = "optimize M with acc on d {\n  gepa(auto = light)\n}\n" + GOOD_MODULE
    assert ("E1605", 2, 3) in _diags(tmp_path, body)


def test_prelude_alone_is_clean(tmp_path: Path) -> None:
    assert _diags(tmp_path, GOOD_MODULE) == []


def test_every_documented_code_is_exercised() -> None:
    import lmpc.compiler.check.program as check

    documented = {line.split()[0] for line in (check.__doc__ or "").splitlines()
                  if line[:1] in ("E", "W") and line[1:5].isdigit()}
    tested = {c[2] for c in CASES} | {"E1002", "E1003", "E1099", "W1901", "E1999",
                                      "W1606",  # tests/test_weak_prompt_model.py
                                      "E1605",  # test_specified_but_unimplemented_pass
                                      "E1004"}  # tests/test_frontend_limits.py
    assert documented <= tested, documented - tested


def test_did_you_mean_hints(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    _, diags, _ = check_text(PRELUDE + "optimize M with acc on d {\n  copro(bredth = 3)\n"
                             "  then mipro_v2(auto = lite)\n}\n" + GOOD_MODULE,
                             str(tmp_path / "main.lmp"))
    assert [d.hint for d in diags] == ["did you mean 'breadth'?", "did you mean 'light'?"]


def test_dspy_arguments_of_a_pass_point_at_the_block_setting(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    _, diags, _ = check_text(PRELUDE + "optimize M with acc on d {\n"
                             "  copro(num_threads = 4, metric = acc)\n}\n" + GOOD_MODULE,
                             str(tmp_path / "main.lmp"))
    assert [(d.code, d.span.line - PRELUDE_LINES, d.span.col) for d in diags] == [
        ("E1209", 2, 9), ("E1209", 2, 26)]
    assert "threads: N" in diags[0].hint and "with METRIC" in diags[1].hint


def test_a_bare_pass_checks_like_one_with_empty_parentheses(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    bare, diags, _ = check_text(PRELUDE + "optimize M with acc on d {\n  copro\n"
                                "  then labeled_fewshot\n}\n" + GOOD_MODULE,
                                str(tmp_path / "main.lmp"))
    parens, _, _ = check_text(PRELUDE + "optimize M with acc on d {\n  copro()\n"
                              "  then labeled_fewshot()\n}\n" + GOOD_MODULE,
                              str(tmp_path / "main.lmp"))
    assert diags == [] and bare is not None and parens is not None
    assert [p.model_dump(exclude={"span"}) for p in bare.optimizes[0].passes] == [
        p.model_dump(exclude={"span"}) for p in parens.optimizes[0].passes]


def test_split_files_check_each_file_and_keep_their_paths(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    (tmp_path / "data" / "dev.jsonl").write_text('{"q": "yo", "a": "high"}\n')
    (tmp_path / "data" / "test.jsonl").write_text('{"question": "yo", "a": "high"}\n')
    source = ('dataset e = jsonl {\n  train: "data/train.jsonl"\n  dev: "data/dev.jsonl"\n'
              '  inputs: [q]\n}\n')
    program, diags, _ = check_text(PRELUDE + source, str(tmp_path / "main.lmp"))
    assert diags == [] and program is not None
    ds = program.datasets["e"]
    assert ds.path == "" and ds.files == {"train": "data/train.jsonl", "val": "data/dev.jsonl"}
    assert set(ds.files_sha256) == {"train", "val"}
    bad = source.replace("  inputs", '  test: "data/test.jsonl"\n  inputs')
    _, diags, _ = check_text(PRELUDE + bad, str(tmp_path / "main.lmp"))
    assert [(d.code, d.message) for d in diags] == [
        ("E1404", "dataset 'e' (its test file) has no column 'q' for input 'q'")]


def test_a_signature_field_keeps_dspys_prefix(tmp_path: Path) -> None:
    program, diags, _ = check_text('signature T {\n  in q: str "asked" prefix "Question:"\n'
                                   "  out a: str\n}\n", str(tmp_path / "main.lmp"))
    assert diags == [] and program is not None
    sig = program.signatures["T"]
    assert (sig.inputs[0].prefix, sig.inputs[0].desc, sig.outputs[0].prefix) == (
        "Question:", "asked", None)


def test_import_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.lmp").write_text('import "b.lmp"\nenum A { x }\n')
    (tmp_path / "b.lmp").write_text('enum B { y }\nimport "a.lmp"\n')
    program, diags, sources = load_program(tmp_path / "a.lmp")
    assert program is None
    assert [(d.code, Path(d.span.file).name, d.span.line, d.span.col) for d in diags] == [
        ("E1002", "b.lmp", 2, 1)]
    assert "a.lmp -> b.lmp -> a.lmp" in diags[0].message
    assert set(map(lambda p: Path(p).name, sources)) == {"a.lmp", "b.lmp"}


def test_diamond_import_is_not_a_duplicate(tmp_path: Path) -> None:
    (tmp_path / "base.lmp").write_text("enum P { low, high }\n")
    (tmp_path / "x.lmp").write_text('import "base.lmp"\n')
    (tmp_path / "y.lmp").write_text('import "base.lmp"\n')
    (tmp_path / "main.lmp").write_text('import "x.lmp"\nimport "y.lmp"\n')
    program, diags, _ = load_program(tmp_path / "main.lmp")
    assert diags == [] and program is not None and list(program.enums) == ["P"]


def test_unreadable_import(tmp_path: Path) -> None:
    (tmp_path / "bad.lmp").write_bytes(b"enum P { \xff }\n")
    _, diags, _ = check_text('\nimport "bad.lmp"\n', str(tmp_path / "main.lmp"))
    # located at the bad byte, in the imported file
    assert [(d.code, Path(d.span.file).name, d.span.line, d.span.col) for d in diags] == [
        ("E1003", "bad.lmp", 1, 10)]
    assert "not UTF-8 at line 1, column 10" in diags[0].message


def test_import_resolves_relative_to_importer(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.lmp").write_text('import "b.lmp"\n')
    (tmp_path / "lib" / "b.lmp").write_text("enum P { low }\n")
    program, diags, _ = check_text('import "lib/a.lmp"\n', str(tmp_path / "main.lmp"))
    assert diags == [] and program is not None and "P" in program.enums


def test_syntax_errors_in_an_import_are_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.lmp").write_text("enum P {\n")
    _, diags, sources = check_text('import "bad.lmp"\n', str(tmp_path / "main.lmp"))
    assert [d.code[:2] for d in diags] == ["E0"]
    assert diags[0].span.file.endswith("bad.lmp") and diags[0].span.file in sources


def test_too_many_errors_are_capped(tmp_path: Path) -> None:
    body = "module M(q: str) -> () {\n" + "".join(
        f"  x{i} = predict Nope(q = q)\n" for i in range(80)) + "}"
    found = _diags(tmp_path, body)
    assert len(found) == 51 and found[-1][0] == "E1099"


def test_secret_in_source_is_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "hi", "a": "low"}\n')
    program, diags, _ = check_text('lm k = "openai/x" { api_key: "sk-1" }\n',
                                   str(tmp_path / "main.lmp"))
    assert program is not None
    assert [(d.code, d.severity, d.span.line, d.span.col) for d in diags] == [
        ("W1901", "warning", 1, 30)]
    assert "sk-1" not in diags[0].message


def test_several_errors_are_reported_together(tmp_path: Path) -> None:
    body = ("module M(q: str) -> (a: P) {\n  x = predict Ss(q = q)\n  y = predict S(q = z)\n"
            "  return (a = y.aa)\n}")
    assert [c for c, _, _ in _diags(tmp_path, body)] == ["E1202", "E1210", "E1211"]


def test_missing_root_file(tmp_path: Path) -> None:
    program, diags, _ = load_program(tmp_path / "nope.lmp")
    assert program is None and [d.code for d in diags] == ["E1001"]
