"""Every example in docs/language.md parses (so the reference cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lmpc.grammar.parser import parse

DOC = Path(__file__).parent.parent / "docs" / "language.md"
# untagged fences are .lmp; a tagged one (```python) is another language
BLOCKS = [b for tag, b in re.findall(r"^```(\w*)\n(.*?)^```", DOC.read_text(), re.S | re.M)
          if not tag and "error[" not in b]


def test_the_reference_has_examples() -> None:
    assert len(BLOCKS) >= 15


def as_source(block: str) -> str:
    """Expression examples become the constraints of a module."""
    if re.match(r"\s*(//|/\*|[a-z]+ )", block):
        return block
    return "module M() -> () {\n" + "".join(f"  assert {ln}\n" for ln in block.splitlines()) + "}"


@pytest.mark.parametrize("block", BLOCKS)
def test_doc_example_parses(block: str) -> None:
    tree, diags = parse(as_source(block), "language.md")
    assert diags == [], [str(d) for d in diags]
    assert tree is not None
