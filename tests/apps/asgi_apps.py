"""Plain ASGI apps for the AsgiToWsgi tests: well-behaved ones and misbehaving ones."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TEXT = [(b"content-type", b"text/plain")]


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: Any = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or TEXT})
    await send({"type": "http.response.body", "body": body})


async def hello(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Hello world, no lifespan support (raises on lifespan like many small apps)."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await respond(send, 200, b"Hello, world!")


async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Echoes the request body back, in one message."""
    assert scope["type"] == "http"
    await respond(send, 200, await read_body(receive))


def _jsonable(scope: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in scope.items():
        if key == "headers":
            out[key] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in value]
        elif isinstance(value, bytes):
            out[key] = value.decode("latin-1")
        elif key in ("state", "extensions"):
            out[key] = sorted(value)
        else:
            out[key] = value
    return out


async def show_scope(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answers with the request scope as JSON (bytes as latin-1 text)."""
    if scope["type"] == "lifespan":
        await lifespan_handler(scope, receive, send)
        return
    body = await read_body(receive)
    data = {**_jsonable(scope), "body_length": len(body), "pid": os.getpid()}
    await respond(send, 200, json.dumps(data).encode(), [(b"content-type", b"application/json")])


def record_line(path: str, line: str) -> None:
    """Append one line to a file the test reads (tiny and local: fine on the loop)."""
    with open(path, "a") as log:
        log.write(line + "\n")


async def lifespan_handler(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Completes startup (recording the pid in the state, and in a file when asked) and shutdown."""
    record = os.environ.get("BRIDGE_TEST_LIFESPAN_LOG")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_by"] = os.getpid()
            if record:
                record_line(record, f"startup {os.getpid()}")
            await send({"type": "lifespan.startup.complete"})
        else:
            if record:
                record_line(record, f"shutdown {os.getpid()}")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def stream_until_released(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Sends "first", then waits until the file named in the query exists, then "rest"."""
    gate = scope["query_string"].decode()
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    while not await anyio.Path(gate).exists():  # noqa: ASYNC110 - the gate is set by another process
        await anyio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"rest\n"})


class Asgi2App:
    """A double-callable (ASGI 2) app."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"asgi2 " + self.scope["path"].encode())
