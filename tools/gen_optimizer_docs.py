"""Write docs/optimizers.md from the optimizer specifications (python tools/gen_optimizer_docs.py).

tests/test_optimizer_docs.py fails when the file and the specifications disagree.
"""

from __future__ import annotations

from pathlib import Path

from lmpc.compiler.check.optimize import pass_available
from lmpc.compiler.check.optimizer_specs import OPTIMIZERS, reference_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "optimizers.md"

INTRO = """\
# Optimizers

The passes an `optimize` block can chain with `then`. Each runs over the IR and returns
a new IR; parameters are checked by `lmpc check` (types, ranges, choices) and their
defaults follow the reference implementation (DSPy 3.x). This file is generated from
`lmpc/compiler/check/optimizer_specs.py` by `tools/gen_optimizer_docs.py`.

"""


def render() -> str:
    ready = [name for name in OPTIMIZERS if pass_available(name)]
    planned = [name for name in OPTIMIZERS if not pass_available(name)]
    text = INTRO + reference_table(ready) + "\n"
    if planned:
        text += ("\nSpecified but not implemented yet (`lmpc check` reports E1605): "
                 + ", ".join(f"`{name}`" for name in planned) + ".\n")
    return text


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
