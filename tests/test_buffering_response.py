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
from bridge._http.types import Environ, StartResponse
from bridge.middleware._core.drive import INLINE_FLUSH
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
        for _ in range(4):  # 40 000 bytes: more than is sent inline (INLINE_FLUSH)
            await send({"type": "http.response.body", "body": b"x" * 10_000, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        returned.set()

    client = SlowClient()
    async with anyio.create_task_group() as group:
        group.start_soon(ResponseBuffering(app), scope(), Receive(client), client.send)
        await returned.wait()  # the app is done although the client has read nothing
        assert client.body == b""
        client.release.set()
    assert client.head is not None
    assert (b"content-length", b"40000") in client.head["headers"]
    assert client.body == b"x" * 40_000


async def test_starlette_background_task_does_not_wait_for_the_client() -> None:
    ran = anyio.Event()

    async def task() -> None:
        ran.set()

    async def endpoint(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("done" * 10_000, background=BackgroundTask(task))

    app = Starlette(routes=[Route("/", endpoint)])
    client = SlowClient()
    async with anyio.create_task_group() as group:
        group.start_soon(ResponseBuffering(app), scope(), Receive(client), client.send)
        await ran.wait()  # ran while the client still waits
        client.release.set()
    assert bytes(client.body) == b"done" * 10_000


def test_wsgi_thread_released_under_wsgi_to_asgi(anyio_backend: Any) -> None:
    """Flask's worker thread (via WsgiToAsgi) has finished, and Flask has closed its
    response, before a slow client has read a byte."""
    closed = threading.Event()
    flask = Flask(__name__)

    @flask.get("/")
    def index() -> Any:
        chunks = (b"chunk" for _ in range(10_000))  # 50 000 bytes, more than INLINE_FLUSH
        response = flask.response_class(chunks, mimetype="text/plain")
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
        assert client.body == b"chunk" * 10_000

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
    from bridge._http.translate import environ_from_scope

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


async def test_small_held_body_is_sent_from_the_last_send() -> None:
    """Up to INLINE_FLUSH bytes fit in a server's write buffer: sent inline, no task."""
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * INLINE_FLUSH})
        order.append("app returned")

    async def send(message: dict[str, Any]) -> None:
        order.append(message["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await ResponseBuffering(app)(scope(), receive, send)
    assert order == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
        "app returned",
    ]


async def test_client_gone_while_the_held_body_is_sent(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 5000, "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client went away")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    before = open_fds()
    buffered = ResponseBuffering(app, max_size=100, spool_dir=tmp_path)
    with pytest.raises(OSError, match="client went away"):  # as the server would see it
        await buffered(scope(), receive, send)
    assert open_fds() == before


def test_wsgi_write_callable_is_held_too() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]

    result = call_wsgi(ResponseBuffering(app), Request())
    assert result.body == b"written and returned"
    assert result.header(b"content-length") == b"20"


async def test_response_with_trailers_is_not_held() -> None:
    sent: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"x", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await ResponseBuffering(app)(scope(), receive, send)
    assert sent == ["http.response.start", "http.response.body", "http.response.trailers"]
