"""Dataset loading and splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmpc.eval.data import DataError, load_examples, split_examples
from lmpc.ir import DatasetIR, Example, SplitIR


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_jsonl_inputs_labels_and_source(tmp_path: Path) -> None:
    _write(tmp_path, "d.jsonl", '{"q": "a", "a": 1}\n\n{"q": "b", "a": 2}\n')
    ds = DatasetIR(name="d", format="jsonl", path="d.jsonl", inputs=["q"])
    rows = load_examples(ds, tmp_path, ["ignored"])
    assert [(r.inputs, r.labels) for r in rows] == [({"q": "a"}, {"a": 1}), ({"q": "b"}, {"a": 2})]
    assert rows[1].source.endswith("d.jsonl:3") and rows[1].index == 1


def test_module_inputs_used_when_dataset_names_none(tmp_path: Path) -> None:
    _write(tmp_path, "d.jsonl", '{"q": "a", "a": 1}\n')
    ds = DatasetIR(name="d", format="jsonl", path="d.jsonl")
    assert load_examples(ds, tmp_path, ["q"])[0].inputs == {"q": "a"}


def test_mapping_renames_columns(tmp_path: Path) -> None:
    _write(tmp_path, "d.csv", "text,label\nhello,pos\n")
    ds = DatasetIR(name="d", format="csv", path="d.csv", inputs=["review"],
                   mapping={"review": "text", "sentiment": "label"})
    row = load_examples(ds, tmp_path, [])[0]
    assert row.inputs == {"review": "hello"} and row.labels == {"sentiment": "pos"}


def test_json_list(tmp_path: Path) -> None:
    _write(tmp_path, "d.json", json.dumps([{"q": 1, "a": 2}, {"q": 3, "a": 4}]))
    ds = DatasetIR(name="d", format="json", path="d.json", inputs=["q"])
    assert [r.labels["a"] for r in load_examples(ds, tmp_path, [])] == [2, 4]


@pytest.mark.parametrize(
    ("fmt", "text", "where", "what"),
    [
        ("jsonl", '{"q": 1}\n{"q": \n', "d.jsonl:2", "invalid JSON"),
        ("jsonl", '{"q": 1}\n[1, 2]\n', "d.jsonl:2", "expected a JSON object"),
        ("jsonl", '{"q": 1}\n{"x": 1}\n', "d.jsonl:2", "missing input field(s) 'q'"),
        ("csv", "q,a\n1,2\n3\n", "d.csv:3", "number of columns"),
        ("json", '{"q": 1}', "d.json:1", "JSON list"),
        ("json", '[{"q": 1},\n {"a": 1}]', "d.json:2", "missing input"),  # line of the row
    ],
)
def test_bad_rows_name_file_and_line(
    tmp_path: Path, fmt: str, text: str, where: str, what: str
) -> None:
    _write(tmp_path, f"d.{fmt}", text)
    ds = DatasetIR(name="d", format=fmt, path=f"d.{fmt}", inputs=["q"])  # type: ignore[arg-type]
    with pytest.raises(DataError) as err:
        load_examples(ds, tmp_path, [])
    assert where in str(err.value) and what in str(err.value)


def test_missing_file_and_missing_mapped_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_examples(DatasetIR(name="d", format="jsonl", path="nope.jsonl"), tmp_path, [])
    _write(tmp_path, "d.jsonl", '{"q": 1}\n')
    ds = DatasetIR(name="d", format="jsonl", path="d.jsonl", mapping={"x": "col"})
    with pytest.raises(DataError, match=r"d.jsonl:1: missing column 'col'"):
        load_examples(ds, tmp_path, [])


def _rows(n: int) -> list[Example]:
    return [Example(inputs={"i": i}, labels={}, index=i) for i in range(n)]


def test_split_deterministic_disjoint_and_covering() -> None:
    split = SplitIR(train=0.2, val=0.5, test=0.3, seed=7)
    a, b = split_examples(_rows(23), split), split_examples(_rows(23), split)
    assert a == b
    ids = [[r.index for r in a[k]] for k in ("train", "val", "test")]
    assert [len(x) for x in ids] == [5, 11, 7]
    assert sorted(sum(ids, [])) == list(range(23))
    other = split_examples(_rows(23), split.model_copy(update={"seed": 8}))
    assert other["train"] != a["train"]


def test_split_counts_none_and_errors() -> None:
    parts = split_examples(_rows(10), SplitIR(train=2, val=3))
    assert [len(parts[k]) for k in ("train", "val", "test")] == [2, 3, 0]
    assert len(split_examples(_rows(4), SplitIR())["train"]) == 4
    with pytest.raises(DataError, match="only 10"):
        split_examples(_rows(10), SplitIR(train=8, val=5))


# ---------------------------------------------------------------- data that comes split


def _split_files(tmp_path: Path) -> None:
    for part, n in (("train", 6), ("dev", 3), ("test", 4)):
        _write(tmp_path, f"{part}.jsonl",
               "".join(json.dumps({"q": f"{part}{i}", "a": i}) + "\n" for i in range(n)))


def test_split_files_are_each_their_split_in_file_order(tmp_path: Path) -> None:
    from lmpc.eval.data import load_splits

    _split_files(tmp_path)
    ds = DatasetIR(name="d", format="jsonl", inputs=["q"],
                   files={"train": "train.jsonl", "val": "dev.jsonl", "test": "test.jsonl"},
                   split=SplitIR(seed=7))
    parts = load_splits(ds, tmp_path, [])
    assert {k: [e.inputs["q"] for e in v] for k, v in parts.items()} == {
        "train": [f"train{i}" for i in range(6)], "val": ["dev0", "dev1", "dev2"],
        "test": [f"test{i}" for i in range(4)]}
    indices = [e.index for rows in parts.values() for e in rows]
    assert indices == list(range(13))  # one index per row across the files
    assert parts["test"][0].source.endswith("test.jsonl:1")


def test_a_split_of_split_files_cuts_val_out_of_the_train_file_only(tmp_path: Path) -> None:
    from lmpc.eval.data import load_splits

    _split_files(tmp_path)
    ds = DatasetIR(name="d", format="jsonl", inputs=["q"],
                   files={"train": "train.jsonl", "test": "test.jsonl"},
                   split=SplitIR(train=4, val=2, seed=1))
    parts = load_splits(ds, tmp_path, [])
    train_rows = {f"train{i}" for i in range(6)}
    assert len(parts["train"]) == 4 and len(parts["val"]) == 2
    assert {e.inputs["q"] for e in parts["train"] + parts["val"]} == train_rows
    assert [e.inputs["q"] for e in parts["test"]] == [f"test{i}" for i in range(4)]
