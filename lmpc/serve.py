"""``lmpc serve``: built programs behind HTTP (FastAPI on uvicorn).

One ``POST /NAME`` route per program, whose request and response models are the
program's generated ``Input`` / ``Output`` models (``lmpc.runtime.typed``), so
``/docs`` and ``/openapi.json`` show the real schema, enum values included; and
``POST /NAME/batch`` for ``{"rows": [...]}`` (at most ``max_batch`` rows). ``GET
/healthz`` says the server is up and what it serves.

Limits: a request body over ``max_body`` bytes is refused (413) before it is read
whole; a run that takes longer than ``timeout_s`` answers 504 (the LM call itself ends
on its own retries and timeouts, its reply is cached); at most ``workers`` runs go at
once (the LM client's per-model limits still apply below that), more requests wait.
An input that does not fit the model is FastAPI's 422, naming the field; a run that
failed is 502 with the reason. The programs are loaded with the runner's trust, exactly
as ``lmpc run`` loads them (docs/trust.md). Shutdown (SIGTERM, Ctrl-C) is uvicorn's
graceful one: it stops accepting, lets the requests in flight finish (up to
``drain_s``), then exits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lmpc.api import Program

log = logging.getLogger("lmpc")

DEFAULT_MAX_BODY = 1_000_000  # bytes
DEFAULT_MAX_BATCH = 256  # rows
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_WORKERS = 16


def create_app(programs: list[Program], *, max_body: int = DEFAULT_MAX_BODY,
               max_batch: int = DEFAULT_MAX_BATCH, timeout_s: float = DEFAULT_TIMEOUT_S,
               workers: int = DEFAULT_WORKERS) -> FastAPI:
    """The FastAPI app serving ``programs`` (names must differ)."""
    from fastapi import FastAPI

    from lmpc.version import __version__

    names = [p.name for p in programs]
    if len(set(names)) != len(names):
        raise ValueError(f"two programs share a name: {', '.join(names)}")
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmpc-serve")
    app = FastAPI(title="lmpc serve: " + ", ".join(names), version=__version__,
                  description="Built lmpc programs; one POST route per program.")
    app.router.on_shutdown.append(lambda: pool.shutdown(wait=True))
    _limit_body(app, max_body)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Up, and the programs it serves."""
        return {"status": "ok", "programs": names}

    for program in programs:
        _routes(app, program, pool, max_batch, timeout_s)
    return app


def _routes(app: FastAPI, program: Program, pool: ThreadPoolExecutor, max_batch: int,
            timeout_s: float) -> None:
    from fastapi import HTTPException
    from pydantic import BaseModel, Field, create_model

    from lmpc.api import InputError, RunError

    Input, Output = program.Input, program.Output  # noqa: N806 (they are classes)
    name = program.name
    BatchItem = create_model(  # noqa: N806
        f"{name}BatchItem", __base__=BaseModel,
        output=(Output | None, Field(None, description="the outputs, when the row ran")),
        error=(str | None, Field(None, description="why the row failed")))
    BatchRequest = create_model(  # noqa: N806
        f"{name}BatchRequest", __base__=BaseModel,
        rows=(list[Input], Field(..., min_length=1, max_length=max_batch)))  # type: ignore[valid-type]
    BatchResponse = create_model(  # noqa: N806
        f"{name}BatchResponse", __base__=BaseModel, results=(list[BatchItem], ...))  # type: ignore[valid-type]

    async def run(fn: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, fn), timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"{name}: no answer within {timeout_s:g} s") from None
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        except RunError as exc:
            raise HTTPException(502, str(exc)) from None

    async def call(body: Input) -> Any:  # type: ignore[valid-type]
        inputs = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        return await run(functools.partial(program, **inputs))

    async def batch(body: BatchRequest) -> Any:  # type: ignore[valid-type]
        rows = [r.model_dump(exclude_unset=True) for r in body.rows]  # type: ignore[attr-defined]
        results = await run(functools.partial(program.batch, rows, return_exceptions=True))
        return {"results": [{"error": str(r)} if isinstance(r, RunError) else {"output": r}
                            for r in results]}

    # the models are local: give FastAPI the classes, not the postponed names
    call.__annotations__["body"] = Input
    batch.__annotations__["body"] = BatchRequest
    doc = (Output.__doc__ or "").strip()
    app.post(f"/{name}", response_model=Output, tags=[name], summary=f"Run {name}",
             description=f"{doc}\n\nTask LM: {program.task_lm.model}.",
             operation_id=f"run_{name}")(call)
    app.post(f"/{name}/batch", response_model=BatchResponse, tags=[name],
             summary=f"Run {name} on several rows (at most {max_batch})",
             operation_id=f"batch_{name}")(batch)


def _limit_body(app: FastAPI, max_body: int) -> None:
    """413 for a body over ``max_body`` bytes: by its Content-Length when it says, else
    counted as it streams in (a chunked upload cannot get past the limit either)."""
    from starlette.responses import JSONResponse

    too_big = JSONResponse({"detail": f"request body over {max_body} bytes"}, 413)

    class LimitBody:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body):
                await too_big(scope, receive, send)
                return
            seen, refused = 0, False

            async def guarded_send(message: Any) -> None:
                if not refused:  # once refused, the app's own answer is dropped
                    await send(message)

            async def counted() -> Any:
                nonlocal seen, refused
                message = await receive()
                if message["type"] == "http.request" and not refused:
                    seen += len(message.get("body", b""))
                    if seen > max_body:
                        await too_big(scope, receive, send)
                        refused = True
                        return {"type": "http.disconnect"}  # the app stops reading
                return message

            try:
                await self.inner(scope, counted, guarded_send)
            except Exception:
                if not refused:
                    raise

    app.add_middleware(LimitBody)  # type: ignore[arg-type]


def serve(programs: list[Program], *, host: str = "127.0.0.1", port: int = 8000,
          drain_s: float = 30.0, log_level: str = "info", **limits: Any) -> None:
    """Run the app on uvicorn until SIGTERM / Ctrl-C, then drain and return."""
    import uvicorn

    app = create_app(programs, **limits)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=drain_s, lifespan="on")
    uvicorn.Server(config).run()
