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

What every pass does beyond the reference, so that it never quietly makes things worse:

- **Class-balanced demos** (`stratify = true`). When the metric's field is an enum (or a
  literal union, a bool, or a small label set in the data), labeled and bootstrapped
  demo sets cover every class of the trainset before repeating one: `labeled_fewshot`'s
  seeded sample, `bootstrap_fewshot`'s walk (the next example tried is of the class
  with the fewest bootstrapped demos), its labeled top-up, and the demo candidates of
  `bootstrap_random_search` and `mipro_v2`. Still seeded; the pass report gives the
  class counts of the trainset and of each predictor's demos. `stratify = false`
  samples plainly (`labeled_fewshot(sample = false)` still takes the first k rows).
- **Proposal guard** (`copro`, `mipro_v2`, `gepa`, `simba`). A proposed instruction that is empty, a
  number, not prose, a copy of an earlier candidate, an echo of the meta-prompt, or
  off-topic is dropped and asked again at a fresh rollout index (at most twice per
  candidate); the report's `guard` counts what was dropped and why. `lmpc check` and
  `lmpc build` warn (W1606) when the LM writing instructions is the embedded base
  model: set `prompt_model:` to a stronger LM.
- **Honest dry run**. `lmpc build --dry-run` projects each step's LM calls from the
  real rows, for a cold cache or `--no-cache`: `~N` when the teacher succeeds on every
  bootstrap attempt, `at most M` when it never does. Tested within 10% of the calls
  made for every pass and the whole build over a grid of settings
  (`tests/test_dry_run_grid.py`; `gepa` and `simba` in their own tests, with a
  scripted world whose runs vary). When the writer is the embedded base model (W1606)
  the projection counts what the guard then does: `gepa` proposes no child, `simba`'s
  rule candidates come back as copies of programs already scored. The build records
  each pass's projection in its report (`dry_run`) and draws its progress against it.
- **Reflective passes** (`gepa`, `simba`). They read the metric's feedback (see
  "Feedback" in language.md): `gepa` is the `gepa` package's engine driven through
  lmpc's IR, runtime and reflection LM, and records its whole candidate tree (parents,
  per-example val scores, the reflection behind each child), which `lmpc show` draws;
  it returns the best candidate on val, the input among them. `simba` picks on the
  trainset as DSPy does, then keeps the input when the pick is worse on val.
- **No silent regressions**. When the optimized program scores below the unoptimized
  one on val (train when there is no val split), `lmpc build` says so (W1607) beside
  its summary; the artifact still holds what the pipeline produced.

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
