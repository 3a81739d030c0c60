"""A FastAPI app behind AsgiToWsgi, importable by server processes as ``tests.apps.fastapi_app``.

Set BRIDGE_TEST_LIFESPAN_LOG to a file to record "startup <pid>" / "shutdown <pid>" lines.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from bridge import AsgiToWsgi

from .asgi_apps import record_line

MiB = 1024 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    record = os.environ.get("BRIDGE_TEST_LIFESPAN_LOG")
    if record:
        record_line(record, f"startup {os.getpid()}")
    yield {"started_by": os.getpid()}
    if record:
        record_line(record, f"shutdown {os.getpid()}")


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = "") -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/echo")
async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse((await request.body()).decode())


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"started_by": request.state.started_by, "pid": os.getpid()}


async def _wait_for_file(path: str) -> None:
    while not await anyio.Path(path).exists():  # noqa: ASYNC110 - created by the test process
        await anyio.sleep(0.01)


@app.get("/stream")
async def stream(gate: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        await _wait_for_file(gate)
        yield b"rest\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/sse")
async def sse(gate: str) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        yield "data: one\n\n"
        await _wait_for_file(gate)
        yield "data: two\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/download")
async def download(size: int) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        block = b"d" * MiB
        for _ in range(size // MiB):
            yield block

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return {"received": total}


application = AsgiToWsgi(app, backend=os.environ.get("BRIDGE_TEST_BACKEND", "asyncio"))
