"""Python tools: typed callables imported by path, only when the caller allows it.

A tool's ``import_path`` is ``"package.module:function"``. The module is looked up first
as a file under the program's folder (``<base_dir>/package/module.py``), so an example
ships its tools beside its ``.lmp`` file, then on the normal import path. Importing runs
user code, so it happens only when the runner's trust allows it (``RunContext.trust``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmpc.ir import ProgramIR, ToolIR
from lmpc.runtime.context import RunContext
from lmpc.runtime.errors import RuntimeFailure
from lmpc.runtime.types import coerce

_loaded: dict[tuple[str, str], Callable[..., Any]] = {}
_lock = threading.Lock()


def load_tool(tool: ToolIR, ctx: RunContext) -> Callable[..., Any]:
    """The tool's callable; ``ToolNotAllowed`` unless the context allows it."""
    ctx.trust.require_code("tool", tool.name, tool.import_path)
    key = (str(Path(ctx.base_dir).resolve()), tool.import_path)
    with _lock:
        fn = _loaded.get(key)
        if fn is None:
            fn = _import(tool, Path(key[0]))
            _loaded[key] = fn
    return fn


def _import(tool: ToolIR, base_dir: Path) -> Callable[..., Any]:
    module_name, sep, attr = tool.import_path.partition(":")
    if not sep or not module_name or not attr:
        raise RuntimeFailure(
            f"tool {tool.name!r}: import path {tool.import_path!r} must look like 'module:function'"
        )
    try:
        module = _module_from_dir(module_name, base_dir) or importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeFailure(f"tool {tool.name!r}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # user code failed at import time
        raise RuntimeFailure(
            f"tool {tool.name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RuntimeFailure(f"tool {tool.name!r}: {module_name!r} has no function {attr!r}")
    return fn


def _module_from_dir(module_name: str, base_dir: Path) -> Any:
    path = base_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    if not path.is_file():
        return None
    # A unique name per folder, so two programs' "tools.py" do not collide.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(f"lmpc_tool_{digest}_{path.stem}", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_tool(tool: ToolIR, ctx: RunContext, args: dict[str, Any], program: ProgramIR) -> Any:
    """Check and coerce ``args`` against the tool's parameters, then call it.

    Errors in the arguments raise ``RuntimeFailure``; exceptions of the tool itself
    propagate unchanged (ReAct turns them into observations).
    """
    fn = load_tool(tool, ctx)
    params = {p.name: p for p in tool.params}
    unknown = [k for k in args if k not in params]
    if unknown and tool.params:
        raise RuntimeFailure(
            f"tool {tool.name!r} has no parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(params) or 'none'}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in args.items():
        ftype = params[name].type if name in params else None
        kwargs[name] = coerce(value, ftype, program, name) if ftype else value
    missing = [p.name for p in tool.params if p.name not in kwargs and p.type.kind != "optional"]
    if missing and _required(fn, missing):
        raise RuntimeFailure(f"tool {tool.name!r} needs argument(s) {', '.join(missing)}")
    return fn(**kwargs)


def _required(fn: Callable[..., Any], names: list[str]) -> bool:
    """True if any of ``names`` has no default in the Python function."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return any(
        n in sig.parameters and sig.parameters[n].default is inspect.Parameter.empty
        for n in names
    )


def describe_tool(tool: ToolIR) -> str:
    """``search(query: str) -> list[str]: what it does`` for prompts."""
    params = ", ".join(f"{p.name}: {p.type}" for p in tool.params)
    desc = f": {tool.desc}" if tool.desc else ""
    return f"{tool.name}({params}) -> {tool.returns}{desc}"
