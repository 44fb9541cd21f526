"""Every effect a program can have outside itself, and whether the runner's trust allows it.

An effect is an LM endpoint (with the environment secrets sent to it), a file read, or
Python code imported. ``lmpc show`` lists them all; every command refuses to start
when one it would cause is not allowed (``blocked``), naming the flag that allows it.

>>> lm = LMIR(name="x", model="hosted_vllm/m", settings={
...     "api_base": "http://10.0.0.9/v1", "api_key": {"env": "GITHUB_TOKEN"}})
>>> effect = lm_effects([lm], Trust())[0]
>>> effect.target, effect.detail, effect.allowed
('hosted_vllm/m at http://10.0.0.9/v1', 'sends env GITHUB_TOKEN', False)
>>> effect.needs
'allow it with --allow-endpoint http://10.0.0.9/v1 (or LMPC_ALLOW_ENDPOINTS)'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lmpc.ir import LMIR, ProgramIR
from lmpc.runtime.trust import Trust, TrustError, env_names, request_endpoints

Kind = Literal["lm", "file", "code"]


@dataclass(frozen=True)
class Effect:
    """One thing a program can cause, and whether the trust allows it."""

    kind: Kind
    what: str  # "LM fast", "corpus of Rag.r", "tool search"
    target: str  # model and endpoint, resolved path, import path
    detail: str = ""  # "sends env OPENAI_API_KEY"
    allowed: bool = True
    needs: str = ""  # how to allow it, when it is not allowed

    def line(self) -> str:
        detail = f", {self.detail}" if self.detail else ""
        verdict = "" if self.allowed else f" -- BLOCKED: {self.needs}"
        return f"{self.what}: {self.target}{detail}{verdict}"


def program_effects(program: ProgramIR, module: str, trust: Trust, task_lm: LMIR, *,
                    metric: str | None = None, datasets: bool = False) -> list[Effect]:
    """The effects of running ``module`` (scored with ``metric``; ``datasets``: the
    optimize blocks' data is read too, as a build does)."""
    lms = _lms_used(program, module, task_lm, metric)
    found = lm_effects(lms, trust)
    found += _embedding_effects(program, module)
    found += _file_effects(program, module, trust, datasets)
    found += _weights_effects(lms)
    found += _code_effects(program, module, trust, metric)
    return found


def _weights_effects(lms: Iterable[LMIR]) -> list[Effect]:
    """Tuned weights an LM loads (checked against their sha256 when the artifact loads)."""
    found = []
    for lm in lms:
        adapter = lm.tuned.adapter if lm.tuned is not None else None
        if adapter is not None:
            found.append(Effect("file", f"loads weights of LM {lm.name}", adapter.path,
                                f"LoRA adapter, {adapter.size} bytes, sha256 "
                                f"{adapter.sha256[:16]}..."))
    return found


def blocked(effects: Iterable[Effect]) -> list[Effect]:
    return [e for e in effects if not e.allowed]


def lm_effects(lms: Iterable[LMIR], trust: Trust) -> list[Effect]:
    found = []
    for lm in lms:
        targets = [(lm.model, dict(lm.settings))]
        targets += [(f, {}) for f in lm.fallbacks]
        fallbacks = lm.settings.get("fallbacks")
        for item in fallbacks if isinstance(fallbacks, list) else []:
            if isinstance(item, dict) and isinstance(item.get("model"), str):
                targets.append((item["model"], {k: v for k, v in item.items() if k != "model"}))
        for i, (model, settings) in enumerate(targets):
            settings = {k: v for k, v in settings.items() if k != "fallbacks"}
            what = f"LM {lm.name}" + (f" (fallback {i})" if i else "")
            found.append(_lm_effect(what, model, settings, trust))
    return found


def _lm_effect(what: str, model: str, settings: dict[str, object], trust: Trust) -> Effect:
    endpoints = request_endpoints(settings)
    names = sorted(env_names(settings))
    if model.startswith("local/"):
        target = f"{model} (the embedded model, no network)"
    elif endpoints:
        target = f"{model} at {', '.join(endpoints)}"
    else:
        target = f"{model} (the provider's default endpoint)"
    detail = f"sends env {', '.join(names)}" if names else ""
    try:
        trust.guard_request(model, settings)
    except TrustError as exc:
        return Effect("lm", what, target, detail, False, exc.remedy)
    return Effect("lm", what, target, detail)


def _embedding_effects(program: ProgramIR, module: str) -> list[Effect]:
    """A ``knn_fewshot`` predictor with an embedding model calls it on every run."""
    found = []
    for predictor in _predictors(program, module):
        knn = predictor.options.get("knn")  # type: ignore[attr-defined]
        name = knn.get("vectorizer", "local") if isinstance(knn, dict) else "local"
        if isinstance(name, str) and name != "local":
            model = name.removeprefix("litellm/")
            found.append(Effect("lm", f"embedding model of {predictor.id}",  # type: ignore
                                f"{model} (the provider's default endpoint)"))
    return found


def _lms_used(program: ProgramIR, module: str, task_lm: LMIR, metric: str | None
              ) -> list[LMIR]:
    names: list[str | None] = [p.lm for p in _predictors(program, module)]
    for name in _metric_names(program, metric, module):
        names.append(program.metrics[name].lm)
    used = {task_lm.name: task_lm}
    for name in names:
        if name and name in program.lms:
            used.setdefault(name, program.lms[name])
    return list(used.values())


def _predictors(program: ProgramIR, module: str) -> list[object]:
    try:
        found = list(program.predictors_of(module))
    except KeyError:
        return []
    for member in program.ensemble.members if program.ensemble else []:
        found += [p for pid, p in member.items() if pid.partition(".")[0] in program.modules]
    return found


def _metric_names(program: ProgramIR, metric: str | None, module: str) -> list[str]:
    """The metric, its parts, and the reward metrics of the module's predictors."""
    todo = [metric] if metric else []
    todo += [p.options["reward"] for p in _predictors(program, module)  # type: ignore[attr-defined]
             if isinstance(p.options.get("reward"), str)]  # type: ignore[attr-defined]
    seen: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen or name not in program.metrics:
            continue
        seen.append(name)
        todo += [part for _, part in program.metrics[name].parts]
    return seen


def _file_effects(program: ProgramIR, module: str, trust: Trust, datasets: bool
                  ) -> list[Effect]:
    files: list[tuple[str, str]] = []
    for name in program.modules_of(module):
        for step in program.modules[name].steps:
            if step.kind == "retrieve" and step.retrieve and step.retrieve.corpus:
                files.append((f"corpus of {name}.{step.name}", step.retrieve.corpus))
    if datasets:
        for opt in program.optimizes:
            data = program.datasets.get(opt.dataset)
            if opt.program == module and data is not None:
                for part, path in (data.files.items() if data.files else [("", data.path)]):
                    files.append((f"dataset {data.name}" + (f" ({part})" if part else ""),
                                  path))
    found = []
    for what, path in files:
        try:
            resolved = trust.resolve_file(path, program.base_dir, what)
        except TrustError as exc:
            found.append(Effect("file", f"reads {what}", path, "", False, exc.remedy))
            continue
        found.append(Effect("file", f"reads {what}", str(resolved)))
    return found


def _code_effects(program: ProgramIR, module: str, trust: Trust, metric: str | None
                  ) -> list[Effect]:
    code: list[tuple[str, str, str]] = []  # (what, name, import path)
    tools: list[str] = []
    for name in program.modules_of(module):
        for step in program.modules[name].steps:
            tools += [t for t in (step.tool, step.retrieve.tool if step.retrieve else None) if t]
    for predictor in _predictors(program, module):
        tools += list(predictor.options.get("tools") or [])  # type: ignore[attr-defined]
    for name in dict.fromkeys(tools):
        tool = program.tools.get(name)
        if tool is not None:
            code.append(("tool", name, tool.import_path))
    for name in _metric_names(program, metric, module):
        metric_ir = program.metrics[name]
        if metric_ir.kind == "python":
            code.append(("metric", name, metric_ir.import_path or ""))
    if program.ensemble and program.ensemble.reduce != "majority":
        code.append(("ensemble reducer", program.ensemble.reduce, program.ensemble.reduce))
    found = []
    for what, name, path in code:
        try:
            trust.require_code(what, name, path)
        except TrustError as exc:
            found.append(Effect("code", f"imports {what} {name}", path, "", False, exc.remedy))
            continue
        found.append(Effect("code", f"imports {what} {name}", path))
    return found
