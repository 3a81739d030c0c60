"""ResponseBuffering in process: the app is released before a slow client reads, under
ASGI (asyncio, trio; Starlette background tasks; Flask through WsgiToAsgi) and WSGI;
large bodies spill to an anonymous file; every path closes it."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge import ResponseBuffering, WsgiToAsgi
from bridge._types import Environ, StartResponse
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

pytestmark = pytest.mark.anyio


class SlowClient:
    """An ASGI ``send`` whose body messages wait until the test lets them through."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.head: dict[str, Any] | None = None
        self.body = bytearray()
        self.done = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.head = message
            return
        await self.release.wait()
        self.body += message.get("body", b"")
        if not message.get("more_body", False):
            self.done.set()


def scope(method: str = "GET") -> dict[str, Any]:
    return Request(method=method).scope()  # type: ignore[return-value]


class Receive:
    """An empty request body, then ``http.disconnect`` once the client has read all."""

    def __init__(self, client: SlowClient) -> None:
        self.client = client
        self.sent = False

    async def __call__(self) -> dict[str, Any]:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.client.done.wait()
        return {"type": "http.disconnect"}


async def test_asgi_app_returns_before_the_client_reads() -> None:
    returned = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        returned.set()

    client = SlowClient()
    async with anyio.create_task_group() as group:
        group.start_soon(ResponseBuffering(app), scope(), Receive(client), client.send)
        await returned.wait()  # the app is done although the client has read nothing
        assert client.body == b""
        client.release.set()
    assert client.head is not None
    assert (b"content-length", b"4000") in client.head["headers"]
    assert client.body == b"x" * 4000


async def test_starlette_background_task_does_not_wait_for_the_client() -> None:
    ran = anyio.Event()

    async def task() -> None:
        ran.set()

    async def endpoint(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("done", background=BackgroundTask(task))

    app = Starlette(routes=[Route("/", endpoint)])
    client = SlowClient()
    async with anyio.create_task_group() as group:
        group.start_soon(ResponseBuffering(app), scope(), Receive(client), client.send)
        await ran.wait()  # ran while the client still waits
        client.release.set()
    assert bytes(client.body) == b"done"


def test_wsgi_thread_released_under_wsgi_to_asgi(anyio_backend: Any) -> None:
    """Flask's worker thread (via WsgiToAsgi) has finished, and Flask has closed its
    response, before a slow client has read a byte."""
    closed = threading.Event()
    flask = Flask(__name__)

    @flask.get("/")
    def index() -> Any:
        response = flask.response_class((b"chunk" for _ in range(100)), mimetype="text/plain")
        response.call_on_close(closed.set)
        return response

    app = ResponseBuffering(WsgiToAsgi(flask.wsgi_app))

    async def main() -> None:
        client = SlowClient()
        async with anyio.create_task_group() as group:
            group.start_soon(app, scope(), Receive(client), client.send)
            await anyio.to_thread.run_sync(closed.wait, 10)
            assert closed.is_set()
            assert client.body == b""
            client.release.set()
        assert client.body == b"chunk" * 100

    anyio.run(main, backend=anyio_backend[0])


def test_wsgi_iterable_closed_before_the_first_chunk_is_served() -> None:
    events: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"ab"
            yield b"cd"

        def close(self) -> None:
            events.append("app closed")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        events.append(f"head {headers}")
        return events.append

    iterable = ResponseBuffering(app)(Request().scope() and environ(), start_response)
    for chunk in iterable:
        events.append(f"served {chunk!r}")
    iterable.close()
    assert events == [
        "app closed",
        "head [('Content-Type', 'text/plain'), ('content-length', '4')]",
        "served b'abcd'",
    ]


def environ() -> Environ:
    from bridge._translate import environ_from_scope

    return environ_from_scope(Request().scope(), wsgi_input=None, wsgi_errors=None)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("fail", [None, "after_body"])
def test_large_response_spills_and_file_is_closed(
    fail: str | None, tmp_path: Path, anyio_backend: Any
) -> None:
    chunks = tuple(bytes([i]) * 65536 for i in range(48))  # 3 MiB
    inner = InnerApp(body=chunks, fail=fail)
    options: dict[str, Any] = {"max_size": "1m", "spool_dir": tmp_path}
    before = open_fds()
    asgi = call_asgi(ResponseBuffering(inner.asgi(), **options), backend=anyio_backend[0])
    wsgi = call_wsgi(ResponseBuffering(inner.wsgi(), **options))
    assert asgi == wsgi
    if fail is None:
        assert asgi.body == b"".join(chunks)
        assert asgi.header(b"content-length") == str(3 * 1024 * 1024).encode()
    else:
        assert asgi.status == 500
    assert list(tmp_path.iterdir()) == []
    assert open_fds() == before


def test_disk_refusal_streams_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    inner = InnerApp(body=(b"ab", b"cd"))
    result = call_wsgi(ResponseBuffering(inner.wsgi(), max_size=2, spool_dir="/proc/nope"))
    assert (result.status, result.body, result.header(b"content-length")) == (200, b"abcd", None)
    [record] = [r for r in caplog.records if r.name == "bridge.buffering"]
    assert record.levelno == logging.WARNING
    assert "cannot create the spool file" in record.getMessage()


async def test_httpx_through_buffered_fastapi_like_app() -> None:
    async def endpoint(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("x" * 100_000)

    app = ResponseBuffering(Starlette(routes=[Route("/", endpoint)]), max_size=1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
    assert response.text == "x" * 100_000
    assert response.headers["content-length"] == "100000"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_size": "lots"}, "max_size"),
        ({"max_file_size": None}, "max_file_size"),
        ({"overflow": "drop"}, "overflow"),
        ({"bypass": "sse"}, "bypass"),
        ({"interface": "cgi"}, "interface"),
    ],
)
def test_misconfiguration_raises(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        ResponseBuffering(InnerApp().wsgi(), **options)
