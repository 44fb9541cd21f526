"""Who produces bootstrapped demos: the ``teacher`` parameter of the few-shot passes.

``teacher`` may be
- none: a copy of the student, run with the ``teacher`` LM role (``ctx.teacher_ctx``);
- a module name: that module of the program, with the demos it has now — the module
  being optimized (use the program as it stands, e.g. after ``labeled_fewshot``) or
  another module with the same predictors in the same order (its ids are mapped onto
  the student's);
- an LM role (``lm``, ``teacher``, ``prompt_model``, ``reflection``) or an LM name: a
  copy of the student run on that LM.
A teacher whose predictors have no demos at all first gets labeled demos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmpc.compiler.passes._demos import PassError
from lmpc.compiler.passes.base import PassContext
from lmpc.compiler.passes.labeled_fewshot import apply_labeled
from lmpc.ir import ProgramIR

_ROLE_CTX = {"lm": "run_ctx", "teacher": "teacher_ctx", "prompt_model": "prompt_ctx",
             "reflection": "reflection_ctx"}


@dataclass
class Teacher:
    """A program, the module to run in it, how to run it, and its ids → the student's."""

    program: ProgramIR
    module: str
    run_ctx: Any
    source: str
    rename: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "module": self.module,
                "demos": sum(len(p.demos) for p in self.program.predictors_of(self.module))}


def resolve_teacher(
    original: ProgramIR,
    student: ProgramIR,
    ctx: PassContext,
    teacher: str | None,
    max_labeled_demos: int,
    field: str | None = None,
) -> Teacher:
    """The teacher for bootstrapping ``student`` (``original`` is the program before clearing)."""
    if teacher is not None and teacher in original.modules:
        found = _module_teacher(original, ctx, teacher)
    else:
        found = Teacher(student.model_copy(deep=True), ctx.module, _lm_ctx(original, ctx, teacher),
                        source=f"copy of the student ({teacher or 'teacher role'})")
    if not any(p.demos for p in found.program.predictors_of(found.module)):
        apply_labeled(found.program, found.module, ctx.trainset, max_labeled_demos, True,
                      ctx.seed, field)
    return found


def _module_teacher(original: ProgramIR, ctx: PassContext, name: str) -> Teacher:
    """A teacher module; its predictors must line up with the student's."""
    theirs = original.predictors_of(name)
    ours = original.predictors_of(ctx.module)
    if len(theirs) != len(ours) or any(
        t.signature.name != o.signature.name for t, o in zip(theirs, ours, strict=True)
    ):
        raise PassError(
            f"teacher module '{name}' does not match '{ctx.module}': a teacher needs the "
            f"same predictors in the same order (signatures {[p.signature.name for p in theirs]}"
            f" vs {[p.signature.name for p in ours]})"
        )
    rename = {t.id: o.id for t, o in zip(theirs, ours, strict=True)}
    return Teacher(original.model_copy(deep=True), name, ctx.teacher_ctx,
                   source=f"module {name}", rename=rename)


def _lm_ctx(program: ProgramIR, ctx: PassContext, teacher: str | None) -> Any:
    """The run context of an LM-role or LM-name teacher."""
    if teacher is None:
        return ctx.teacher_ctx
    if teacher in _ROLE_CTX:
        return getattr(ctx, _ROLE_CTX[teacher])
    if teacher in program.lms:
        return ctx.teacher_ctx.derive(task_lm=program.lms[teacher])
    raise PassError(
        f"teacher '{teacher}' is neither a module, an LM nor an LM role of this program "
        f"(modules: {sorted(program.modules)}, LMs: {sorted(program.lms)}, roles: "
        f"{sorted(_ROLE_CTX)})"
    )
