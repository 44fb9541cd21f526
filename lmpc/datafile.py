"""The records of a data file (jsonl, csv, json), each with the line it starts on.

One reader for everyone who reads data: ``lmpc check`` validates every record with it
and ``lmpc build`` loads the same records, so a file that checks clean also builds. Bad
input is a ``DataFileError`` carrying the line (and column) it is at.

>>> text = '{"q": "a"}\\n\\n{"q": "b"}\\n'
>>> [(r.line, r.values) for r in parse_records(text, "jsonl", "d.jsonl")]
[(1, {'q': 'a'}), (3, {'q': 'b'})]
>>> [(r.line, r.where) for r in parse_records('[{"q": 1},\\n {"q": 2}]', "json", "d.json")]
[(1, 'd.json:1'), (2, 'd.json:2')]
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmpc.files import DATA_LIMIT, FileProblem, read_text

FORMATS = ("jsonl", "csv", "json")


class DataFileError(Exception):
    """A data file that cannot be read as records; ``line``/``col`` say where (or 0)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.line, self.col = line, col


@dataclass(frozen=True)
class Record:
    """One row: where it is (``file:line``), its line, and its values."""

    where: str
    line: int
    values: dict[str, Any]


def read_records(path: str | Path, fmt: str, limit: int = DATA_LIMIT) -> list[Record]:
    """Every record of the file at ``path`` in format ``fmt``."""
    try:
        text = read_text(path, limit)
    except FileProblem as exc:
        raise DataFileError(str(exc), exc.line, exc.col) from None
    return parse_records(text, fmt, str(path))


def parse_records(text: str, fmt: str, path: str) -> list[Record]:
    readers = {"jsonl": _jsonl, "csv": _csv, "json": _json}
    if fmt not in readers:
        raise DataFileError(f"unknown data format {fmt!r} (use {', '.join(FORMATS)})")
    return readers[fmt](text, path)


def _jsonl(text: str, path: str) -> list[Record]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{number}: invalid JSON: {exc.msg}", number,
                                exc.colno) from None
        except RecursionError:
            raise DataFileError(f"{path}:{number}: nested too deeply", number, 1) from None
        records.append(Record(f"{path}:{number}", number, _object(row, f"{path}:{number}",
                                                                  number)))
    return records


def _csv(text: str, path: str) -> list[Record]:
    reader = csv.DictReader(text.splitlines())
    try:
        if not reader.fieldnames:
            raise DataFileError(f"{path}:1: CSV file has no header row", 1, 1)
        records = []
        for row in reader:
            number = reader.line_num
            where = f"{path}:{number}"
            if None in row or any(value is None for value in row.values()):
                raise DataFileError(f"{where}: row has a different number of columns than "
                                    "the header", number, 1)
            records.append(Record(where, number, dict(row)))
    except csv.Error as exc:
        raise DataFileError(f"{path}:{reader.line_num}: invalid CSV: {exc}",
                            reader.line_num, 1) from None
    return records


def _json(text: str, path: str) -> list[Record]:
    """A JSON list of objects, each record at the line its object starts on."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}", exc.lineno,
                            exc.colno) from None
    except RecursionError:
        raise DataFileError(f"{path}: nested too deeply", 1, 1) from None
    if not isinstance(data, list):
        raise DataFileError(f"{path}:1: expected a JSON list of objects", 1, 1)
    lines = _element_lines(text, len(data))
    return [Record(f"{path}:{line}", line, _object(row, f"{path}:{line}", line))
            for row, line in zip(data, lines, strict=True)]


def _element_lines(text: str, count: int) -> list[int]:
    """The line each top-level element of a JSON list starts on (the text is valid)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = 1 + text.count("\n", 0, pos), pos
    lines = []
    for _ in range(count):
        while text[pos] in " \t\r\n,":
            pos += 1
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        _, pos = decoder.raw_decode(text, pos)
    return lines


def _object(row: Any, where: str, line: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(row).__name__}",
                            line, 1)
    return row
