"""Real FastAPI and Starlette apps (and one plain ASGI app) for the AsgiToWsgi framework tests.

Apps that must wait for the test use a gate: a ``threading.Event`` in-process
(``GATES``) or a file the test creates when served by another process (``gate=``
query parameter). Nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import sniffio
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, PlainTextResponse
from starlette.routing import Mount, Route

from tests.apps.asgi_apps import Receive, Send, read_body, record_line

CHUNK = 64 * 1024
#: In-process gates, keyed by name: the app waits until the test sets one.
GATES: dict[str, threading.Event] = {}
#: The pid of each lifespan startup per app; a forked child inherits its parent's entries.
STARTUPS: dict[str, list[int]] = {"fastapi": [], "starlette": []}
#: What the plain ``endless`` app saw: http.disconnect messages and finished streams.
ENDLESS = {"started": 0, "disconnects": 0, "ended": 0}


def startups(app: str) -> int:
    """Lifespan startups of ``app`` in this very process."""
    return STARTUPS[app].count(os.getpid())


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


async def wait_for_gate(name: str) -> None:
    """Wait for an in-process gate, or for a file when ``name`` is a path."""
    if os.sep in name:
        while not await anyio.Path(name).exists():  # noqa: ASYNC110 - another process creates it
            await anyio.sleep(0.01)
        return
    event = gate(name)
    while not event.is_set():  # noqa: ASYNC110 - set by a thread, not on this loop
        await anyio.sleep(0.002)


def _record(event: str, app: str) -> None:
    log = os.environ.get("BRIDGE_TEST_LIFESPAN_LOG")
    if log:
        record_line(log, f"{event} {app} {os.getpid()}")


def pattern(size: int) -> bytes:
    """Deterministic bytes of any size (the download body)."""
    block = bytes(range(256)) * (CHUNK // 256)
    return (block * (size // CHUNK + 1))[:size]


# -- FastAPI ----------------------------------------------------------------------------


@asynccontextmanager
async def fastapi_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    STARTUPS["fastapi"].append(os.getpid())
    _record("startup", "fastapi")
    startup_gate = os.environ.get("BRIDGE_TEST_STARTUP_GATE")
    if startup_gate:  # a slow startup: requests arrive while it runs
        await wait_for_gate(startup_gate)
    yield {"started_by": os.getpid(), "backend": sniffio.current_async_library()}
    _record("shutdown", "fastapi")


fastapi_app = FastAPI(lifespan=fastapi_lifespan)


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "q": q,
        "root_path": request.scope["root_path"],
        "url": str(request.url),
        "url_for": str(request.url_for("read_item", item_id=7)),
    }


@fastapi_app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@fastapi_app.post("/echo")
async def fastapi_echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@fastapi_app.get("/cookies")
async def cookies(response: Response) -> dict[str, str]:
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"cookies": "set"}


@fastapi_app.get("/pid")
async def pid(request: Request) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "startups": startups("fastapi"),
        "started_by": request.state.started_by,
        "backend": request.state.backend,
        "loop": _loop_kind(),
    }


def _loop_kind() -> str:
    """``asyncio``, ``uvloop`` or ``trio``: what this request runs on."""
    if sniffio.current_async_library() != "asyncio":
        return "trio"
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


@fastapi_app.get("/hold")
async def hold(request: Request, gate: str) -> dict[str, Any]:
    await wait_for_gate(gate)
    return await pid(request)


@fastapi_app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom from a FastAPI endpoint")


@fastapi_app.get("/missing")
async def missing() -> None:
    raise HTTPException(status_code=404, detail="no such thing")


async def _until_gate(gate: str) -> AsyncIterator[bytes]:
    yield b"first\n"
    await wait_for_gate(gate)
    for number in range(3):
        yield f"rest {number}\n".encode()


@fastapi_app.get("/stream")
async def stream(gate: str) -> StreamingResponse:
    return StreamingResponse(_until_gate(gate), media_type="text/plain")


async def _fails_midway() -> AsyncIterator[bytes]:
    yield b"partial\n"
    raise RuntimeError("failed mid-stream")


@fastapi_app.get("/fails-midway")
async def fails_midway() -> StreamingResponse:
    return StreamingResponse(_fails_midway(), media_type="text/plain")


@fastapi_app.get("/sse", response_class=EventSourceResponse)
async def sse(gate: str) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(raw_data="first", event="tick", id="1")
    await wait_for_gate(gate)
    for number in (2, 3):
        yield ServerSentEvent(raw_data=f"event {number}", event="tick", id=str(number))


@fastapi_app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


class _Download:
    """``size`` bytes in 64 KiB chunks. An iterator class, not an async generator: a
    client that leaves makes Starlette drop it unfinished, which trio would warn about."""

    def __init__(self, size: int) -> None:
        self.block = pattern(CHUNK)
        self.left = size

    def __aiter__(self) -> _Download:
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        part = self.block[: min(CHUNK, self.left)]
        self.left -= len(part)
        return part


@fastapi_app.get("/download")
async def download(size: int) -> StreamingResponse:
    headers = {"content-length": str(size)}
    return StreamingResponse(
        _Download(size), media_type="application/octet-stream", headers=headers
    )


def _after_response(name: str) -> None:
    gate(f"{name}-ran").set()


@fastapi_app.get("/background")
async def background(tasks: BackgroundTasks, name: str) -> dict[str, str]:
    tasks.add_task(wait_then_mark, name)
    return {"queued": name}


async def wait_then_mark(name: str) -> None:
    await wait_for_gate(name)
    _after_response(name)


# -- Starlette ----------------------------------------------------------------------------


@asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    STARTUPS["starlette"].append(os.getpid())
    _record("startup", "starlette")
    yield {"greeting": "hello from lifespan"}
    _record("shutdown", "starlette")


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.state.greeting} at {request.url.path}")


async def user(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "name": request.path_params["name"],
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "url_for": str(request.url_for("user", name="other")),
        }
    )


async def big(request: Request) -> PlainTextResponse:
    return PlainTextResponse("compress me " * 2000)


async def file(request: Request) -> FileResponse:
    return FileResponse(Path(request.query_params["path"]), media_type="application/octet-stream")


async def echo_then_check(request: Request) -> PlainTextResponse:
    body = await request.body()
    disconnected = await request.is_disconnected()
    return PlainTextResponse(f"{len(body)} {disconnected}")


starlette_app = Starlette(
    routes=[
        Route("/", home),
        Route("/big", big),
        Route("/file", file),
        Route("/check", echo_then_check, methods=["POST"]),
        Mount("/users", routes=[Route("/{name}", user, name="user")]),
    ],
    middleware=[Middleware(GZipMiddleware, minimum_size=500)],
    lifespan=starlette_lifespan,
)


# -- a plain ASGI app: an endless download that notices the client leaving -----------


async def endless(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """``/stream``: sends 64 KiB chunks until the client goes; ``/status``: what it saw."""
    if scope["path"].endswith("/status"):
        await _status(send)
        return
    await read_body(receive)
    ENDLESS["started"] += 1
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _OCTETS})
        async with anyio.create_task_group() as group:
            group.start_soon(_notice_disconnect, receive, group.cancel_scope)
            await _send_forever(send)
    finally:
        ENDLESS["ended"] += 1


_OCTETS = [(b"content-type", b"application/octet-stream")]


async def _notice_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    message = await receive()
    if message["type"] == "http.disconnect":
        ENDLESS["disconnects"] += 1
    scope.cancel()


async def _send_forever(send: Send) -> None:
    chunk = pattern(CHUNK)
    try:
        while True:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except OSError:
        await anyio.sleep_forever()  # _notice_disconnect gets http.disconnect and cancels us


def _request_tasks() -> int:
    """AsgiToWsgi request tasks alive on this loop (this one included); -1 off asyncio."""
    if sniffio.current_async_library() != "asyncio":
        return -1
    names = (getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks())
    return sum(name == "AsgiToWsgiRequest.run" for name in names)


async def _status(send: Send) -> None:
    body = (
        f'{{"started": {ENDLESS["started"]}, "disconnects": {ENDLESS["disconnects"]}, '
        f'"ended": {ENDLESS["ended"]}, "request_tasks": {_request_tasks()}}}'
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


_JSON = [(b"content-type", b"application/json")]
