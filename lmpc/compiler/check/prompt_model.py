"""W1606: an optimizer whose instruction writer is the embedded base model.

COPRO, MIPROv2 (and the reflective passes) ask an LM to write instructions. Left to
default, that LM is the task model — on the quick start, the embedded Gemma 3 270M
*base* model, which answers such requests with ``The new instruction.``, ``0.875`` or a
copy of the original: the proposal guard drops them, and the search has little to
search. ``lmpc check`` and ``lmpc build`` warn (a warning, not an error: the build still
runs), naming the role to set.

>>> from lmpc.ir import LMIR, OptimizeIR, PassIR, ProgramIR
>>> prog = ProgramIR(lms={"local": LMIR(name="local", model="local/gemma-3-270m")})
>>> opt = OptimizeIR(program="M", metric="m", dataset="d", lms={"lm": "local"},
...                  passes=[PassIR(name="labeled_fewshot"), PassIR(name="copro")])
>>> [(p.name, role, model) for p, role, model in weak_writers(prog, opt)]
[('copro', 'prompt_model', 'local/gemma-3-270m')]
>>> prog.lms["big"] = LMIR(name="big", model="openai/gpt-4o-mini")
>>> weak_writers(prog, opt.model_copy(update={"lms": {"lm": "local", "prompt_model": "big"}}))
[]
"""

from __future__ import annotations

from lmpc.compiler.check.optimizer_specs import OPTIMIZERS
from lmpc.ir import OptimizeIR, PassIR, ProgramIR

CODE = "W1606"
EMBEDDED_PREFIX = "local/"  # the embedded models (llama.cpp in-process): small base models
EMBEDDED_DEFAULT = "local/gemma-3-270m"  # what runs when no LM is declared at all


def weak_writers(program: ProgramIR, optimize: OptimizeIR,
                 task_model: str | None = None) -> list[tuple[PassIR, str, str]]:
    """(pass, role, model) for each pass whose instruction writer is an embedded model.

    ``task_model`` is the task LM's model when it is known to differ from the source
    (``lmpc build --lm``); a role left unset falls back to the task LM.
    """
    out = []
    for pass_ir in optimize.passes:
        spec = OPTIMIZERS.get(pass_ir.name)
        if spec is None or not (spec.uses_prompt_model or spec.uses_reflection):
            continue
        role = "prompt_model" if spec.uses_prompt_model else "reflection"
        named = pass_ir.params.get("reflection_lm") if role == "reflection" else None
        model = _model(program, named or optimize.lms.get(role)) or task_model \
            or _model(program, optimize.lms.get("lm")) or _first_model(program)
        if model.startswith(EMBEDDED_PREFIX):
            out.append((pass_ir, role, model))
    return out


def message(pass_ir: PassIR, role: str, model: str) -> tuple[str, str]:
    """The warning and its hint."""
    return (f"{pass_ir.name} has the {role} LM write instructions, and that is the "
            f"embedded base model {model}: it writes few usable ones (they are dropped "
            "and re-asked, and the search shrinks)",
            f"set `{role}: NAME` in this optimize block to a stronger LM, e.g. "
            f"lm big = \"openai/gpt-4o-mini\" then {role}: big")


def _model(program: ProgramIR, name: str | None) -> str | None:
    lm = program.lms.get(name) if name else None
    return lm.model if lm is not None else None


def _first_model(program: ProgramIR) -> str:
    return next(iter(program.lms.values())).model if program.lms else EMBEDDED_DEFAULT
