"""Datasets: load a ``DatasetIR`` into ``Example`` rows and split them.

Rows come from jsonl, csv or json (a list of objects). ``mapping`` renames file
columns to field names; ``inputs`` (or, when the dataset names none, the module's
inputs) says which fields are inputs — every other field is a label. A bad row is
reported with its file and line, never skipped.

>>> from lmpc.ir import SplitIR
>>> rows = [Example(inputs={"q": i}, labels={}, index=i) for i in range(10)]
>>> parts = split_examples(rows, SplitIR(train=0.5, val=0.3, test=0.2, seed=1))
>>> [len(parts[k]) for k in ("train", "val", "test")]
[5, 3, 2]
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from lmpc.datafile import DataFileError, read_records
from lmpc.ir import DatasetIR, Example, SplitIR

SPLITS = ("train", "val", "test")


class DataError(Exception):
    """A dataset that cannot be read; the message names the file (and line)."""


def dataset_path(dataset: DatasetIR, base_dir: str | Path, part: str | None = None) -> Path:
    """The dataset file (or the file of split ``part``), relative paths resolved against
    the declaring file's folder."""
    path = Path(dataset.files[part] if part else dataset.path)  # type: ignore[index]
    return path if path.is_absolute() else Path(base_dir) / path


def dataset_files(dataset: DatasetIR, base_dir: str | Path) -> dict[str | None, Path]:
    """Every file of ``dataset``: ``{None: path}``, or one per split part."""
    if dataset.files:
        return {part: dataset_path(dataset, base_dir, part) for part in dataset.files}
    return {None: dataset_path(dataset, base_dir)}


def load_splits(dataset: DatasetIR, base_dir: str | Path, module_inputs: list[str]
                ) -> dict[str, list[Example]]:
    """The train, val and test rows of ``dataset``.

    One file is shuffled with the split's seed and cut (``split_examples``). Split files
    are each their split, in file order, nothing moved between them; a ``split`` then
    cuts a val part out of the train file only. Row indices run on across the files, so
    every row has its own.
    """
    if not dataset.files:
        return split_examples(load_examples(dataset, base_dir, module_inputs), dataset.split)
    parts: dict[str, list[Example]] = {name: [] for name in SPLITS}
    offset = 0
    for name in SPLITS:
        if name not in dataset.files:
            continue
        rows = load_examples(dataset, base_dir, module_inputs, part=name, offset=offset)
        offset += len(rows)
        if name == "train" and (dataset.split.train, dataset.split.val) != (None, None):
            cut = split_examples(rows, dataset.split)
            parts["train"], parts["val"] = cut["train"], cut["val"]
        else:
            parts[name] = rows
    return parts


def load_examples(
    dataset: DatasetIR, base_dir: str | Path, module_inputs: list[str],
    part: str | None = None, offset: int = 0,
) -> list[Example]:
    """Read every row of ``dataset`` (of the file of split ``part``) as an ``Example``,
    numbered from ``offset``; raise ``DataError`` on a bad row."""
    path = dataset_path(dataset, base_dir, part)
    if not path.exists():
        raise DataError(f"{path}: dataset {dataset.name!r} not found")
    try:
        records = read_records(path, dataset.format)
    except DataFileError as exc:
        message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise DataError(message) from None
    inputs = list(dataset.inputs or module_inputs)
    examples = []
    for record in records:
        values = _apply_mapping(record.values, dataset.mapping, record.where)
        examples.append(_to_example(values, inputs, record.where, offset + len(examples)))
    if not examples:
        raise DataError(f"{path}: dataset {dataset.name!r} has no rows")
    return examples


def _apply_mapping(row: dict[str, Any], mapping: dict[str, str], where: str) -> dict[str, Any]:
    """Rename columns to fields (``{"field": "column"}``); unmapped columns keep their name."""
    values = {k: v for k, v in row.items() if k not in mapping.values()}
    for field, column in mapping.items():
        if column not in row:
            raise DataError(f"{where}: missing column {column!r} (mapped to field {field!r})")
        values[field] = row[column]
    return values


def _to_example(values: dict[str, Any], inputs: list[str], where: str, index: int) -> Example:
    missing = [name for name in inputs if name not in values]
    if missing:
        raise DataError(f"{where}: missing input field(s) {', '.join(map(repr, missing))}")
    return Example(
        inputs={name: values[name] for name in inputs},
        labels={k: v for k, v in values.items() if k not in inputs},
        source=where,
        index=index,
    )


def split_examples(examples: list[Example], split: SplitIR) -> dict[str, list[Example]]:
    """Shuffle with ``split.seed`` and cut train, val, test in that order (deterministic).

    A part is a ratio (a float, 0 < x ≤ 1) or a count (an int). When every part is None
    the whole set is train. Parts never overlap.
    """
    rows = list(examples)
    random.Random(split.seed).shuffle(rows)
    sizes = _part_sizes(len(rows), split)
    parts: dict[str, list[Example]] = {}
    start = 0
    for name in SPLITS:
        parts[name] = rows[start : start + sizes[name]]
        start += sizes[name]
    return parts


def _part_sizes(n: int, split: SplitIR) -> dict[str, int]:
    specs = {name: getattr(split, name) for name in SPLITS}
    if all(spec is None for spec in specs.values()):
        return {"train": n, "val": 0, "test": 0}
    sizes = {name: 0 for name in SPLITS}
    ratios: dict[str, float] = {}
    for name, spec in specs.items():
        if isinstance(spec, float):
            if not 0 < spec <= 1:
                raise DataError(f"split {name}: ratio {spec} is not in (0, 1]")
            ratios[name] = spec
        elif spec is not None:
            if spec < 1:
                raise DataError(f"split {name}: count {spec} must be at least 1")
            sizes[name] = spec
    sizes.update(_apportion(n, ratios))
    total = sum(sizes.values())
    if total > n:
        raise DataError(
            f"split asks for {total} rows ({_describe(sizes)}) but the dataset has only {n}"
        )
    return sizes


def _apportion(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Rows per ratio part by largest remainder, so 0.2/0.5/0.3 of 23 is 5/11/7."""
    exact = {name: ratio * n for name, ratio in ratios.items()}
    sizes = {name: int(value) for name, value in exact.items()}
    target = min(n, round(sum(exact.values())))
    by_remainder = sorted(exact, key=lambda name: exact[name] - sizes[name], reverse=True)
    for name in by_remainder[: max(0, target - sum(sizes.values()))]:
        sizes[name] += 1
    return sizes


def _describe(sizes: dict[str, int]) -> str:
    return ", ".join(f"{name} {size}" for name, size in sizes.items() if size)
