"""``lmpc check`` reads every row of a dataset, as ``lmpc build`` does, and checks the
values against the optimized module's types: what build would reject, check rejects,
at the row's file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lmpc.cli import main
from lmpc.compiler.check.program import load_program

SOURCE = '''enum Queue {{ billing, technical }}
signature Route = "ticket: str, urgency: int -> queue: Queue, stars: int"
module Router(ticket: str, urgency: int) -> (queue: Queue, stars: int) {{
  r = predict Route(ticket = ticket, urgency = urgency)
  return (queue = r.queue, stars = r.stars)
}}
dataset tickets = {fmt} "rows.{fmt}" {{ inputs: [ticket, urgency] }}
metric acc = exact_match(queue)
optimize Router with acc on tickets {{ labeled_fewshot(k = 1) }}
'''

GOOD = [{"ticket": "refund me", "urgency": 2, "queue": "billing", "stars": 3},
        {"ticket": "it crashes", "urgency": "5", "queue": "Technical", "stars": 1}]


def _write(tmp_path: Path, rows: list[dict], fmt: str = "jsonl") -> Path:
    data = tmp_path / f"rows.{fmt}"
    if fmt == "jsonl":
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        data.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    else:
        keys = list(rows[0])
        data.write_text(",".join(keys) + "\n" + "".join(
            ",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows))
    source = tmp_path / "p.lmp"
    source.write_text(SOURCE.format(fmt=fmt))
    return source


def _diags(source: Path) -> list[tuple[str, str, int, str]]:
    _, diags, _ = load_program(source)
    return [(d.code, Path(d.span.file).name, d.span.line, d.message) for d in diags]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_good_rows_check_clean(tmp_path: Path, fmt: str) -> None:
    assert _diags(_write(tmp_path, GOOD, fmt)) == []


@pytest.mark.parametrize(("fmt", "bad", "line", "text"), [
    ("jsonl", {"queue": "urgent"}, 3, "label 'queue': 'urgent' is not one of: billing, technical"),
    ("json", {"queue": "urgent"}, 4, "label 'queue': 'urgent' is not one of"),
    ("csv", {"queue": "urgent"}, 4, "label 'queue': 'urgent' is not one of"),
    ("jsonl", {"stars": "five"}, 3, "label 'stars': 'five' is not an int"),
    ("jsonl", {"stars": 2.5}, 3, "label 'stars': 2.5 is not an int"),
    ("csv", {"urgency": "soon"}, 4, "input 'urgency': 'soon' is not an int"),
])
def test_a_value_that_does_not_fit_its_type_is_found_at_its_row(
        tmp_path: Path, fmt: str, bad: dict, line: int, text: str) -> None:
    source = _write(tmp_path, [*GOOD, {**GOOD[0], **bad}], fmt)
    found = _diags(source)
    assert [(c, f, n) for c, f, n, _ in found] == [("E1404", f"rows.{fmt}", line)], found
    assert text in found[0][3]


def test_a_bad_later_row_is_found_by_check_not_only_by_build(tmp_path: Path) -> None:
    source = _write(tmp_path, GOOD)
    data = tmp_path / "rows.jsonl"
    data.write_text(data.read_text() + '{"ticket": "x", "urgency": 1, "queue": "billing"\n'
                    + json.dumps({"urgency": 1, "queue": "billing", "stars": 1}) + "\n")
    found = _diags(source)
    assert found[0][:3] == ("E1404", "rows.jsonl", 3) and "invalid JSON" in found[0][3]
    data.write_text(data.read_text().splitlines()[0] + "\n" + json.dumps(
        {"urgency": 1, "queue": "billing", "stars": 1}) + "\n")
    found = _diags(source)
    assert found == [("E1404", "rows.jsonl", 2, "dataset 'tickets': this row has no column "
                      "'ticket' (input 'ticket')")]
    result = CliRunner().invoke(main, ["check", str(source)])
    assert result.exit_code == 1 and f"{data}:2:1: error[E1404]" in result.output


def test_non_utf8_is_a_line_and_a_bom_is_fine(tmp_path: Path) -> None:
    source = _write(tmp_path, GOOD, "csv")
    data = tmp_path / "rows.csv"
    data.write_bytes(b"\xef\xbb\xbf" + data.read_bytes())  # Excel writes a BOM
    assert _diags(source) == []
    data.write_bytes(data.read_bytes() + b"caf\xe9,1,billing,2\n")
    found = _diags(source)
    assert found[0][:3] == ("E1404", "rows.csv", 4)
    assert "not UTF-8 at line 4, column 4" in found[0][3]


def test_many_bad_rows_are_capped(tmp_path: Path) -> None:
    rows = [*GOOD, *[{**GOOD[0], "queue": f"q{i}"} for i in range(40)]]
    found = _diags(_write(tmp_path, rows))
    assert len(found) == 6 and any("35 more values do not fit" in f[3] for f in found)
