"""RequestBuffering in process, under WSGI (behind wsgiref.validate) and ASGI (asyncio, trio).

The shared behaviour is in the conformance table (tests/middleware/conformance/
cases_buffering.py); these tests cover what the table cannot express: logs, file
descriptors and temporary files, hand-built environs and scopes with broken heads,
cancellation, clocks that move during a read, and configuration errors.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import anyio
import pytest

from bridge import RequestBuffering, RequestBufferingRule
from bridge._http.types import Environ, StartResponse
from bridge.testing import InnerApp, Request, acall_asgi, call_asgi, call_wsgi

ECHO = InnerApp(echo=True)
BACKENDS = ["asyncio", "trio"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge.buffering"]


# -- the documented WSGI / ASGI difference ------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_connection_close_only_under_asgi(backend: str) -> None:
    request = Request(method="POST", body=b"x" * 20)
    asgi = call_asgi(RequestBuffering(ECHO.asgi(), max_body_size=10), request, backend=backend)
    wsgi = call_wsgi(RequestBuffering(ECHO.wsgi(), max_body_size=10), request)
    assert asgi.header(b"connection") == b"close"
    assert wsgi.header(b"connection") is None  # PEP 3333: no hop-by-hop headers from an app
    assert [h for h in asgi.headers if h[0] != b"connection"] == wsgi.headers
    assert (asgi.status, asgi.body) == (wsgi.status, wsgi.body)


# -- broken heads the test kit cannot build for both sides ---------------------------


def scope_with(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request(method="POST", headers=[(b"host", b"t"), *headers])


@pytest.mark.parametrize("mode", ["buffer", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("value", "detail"),
    [
        pytest.param(b"-1", "invalid Content-Length: b'-1'", id="negative"),
        pytest.param(b"ten", "invalid Content-Length: b'ten'", id="non-numeric"),
        pytest.param(b"1e3", "invalid Content-Length: b'1e3'", id="exponent"),
        pytest.param(b"", "invalid Content-Length: b''", id="empty"),
        pytest.param(b"9" * 25, "invalid Content-Length", id="25-digits"),
    ],
)
def test_bad_content_length_asgi(
    backend: str, value: bytes, detail: str, mode: Any, caplog: pytest.LogCaptureFixture
) -> None:
    request = Request(method="GET", headers=[(b"host", b"t"), (b"content-length", value)])
    result = call_asgi(RequestBuffering(ECHO.asgi(), mode=mode), request, backend=backend)
    assert result.status == 400
    assert result.body.startswith(b"Bad Request: " + detail.encode())
    assert result.seen is None
    assert len(rejections(caplog)) == 1


@pytest.mark.parametrize("mode", ["buffer", "stream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicated_content_length_asgi(backend: str, mode: Any) -> None:
    headers = [(b"host", b"t"), (b"content-length", b"3"), (b"content-length", b"4")]
    result = call_asgi(
        RequestBuffering(ECHO.asgi(), mode=mode),
        Request(method="GET", headers=headers),
        backend=backend,
    )
    assert result.status == 400  # refused while building the head, before the exchange
    assert b"duplicated Content-Length" in result.body
    assert result.seen is None


# -- which requests have a body ---------------------------------------------------


def asgi_probe(
    http_version: str, headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]
) -> tuple[Any, dict[str, Any], list[str]]:
    """An app that records the scope it got, the caller's scope and a receive that logs calls."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": "POST" if messages[0].get("body") else "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    calls: list[str] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        calls.append("receive")
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    return receive, scope, calls


async def run_probe(app: Any, scope: dict[str, Any], receive: Any) -> tuple[Any, bytes]:
    """Run ``RequestBuffering`` around ``app``; what the app saw and the response body."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await RequestBuffering(app)(scope, receive, send)
    assert sent[0]["status"] == 200
    return sent, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.anyio
async def test_http11_request_without_length_or_chunking_is_untouched_when_no_body_follows() -> (
    None
):
    receive, scope, calls = asgi_probe("1.1", [], [{"type": "http.request", "body": b""}])
    seen: list[Any] = []

    async def app(app_scope: Any, app_receive: Any, send: Any) -> None:
        seen.append((app_scope, await app_receive()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    await run_probe(app, scope, receive)
    # The server is asked once (it may deliver a body anyway: then it is capped); it
    # says none follows, so the app gets the scope untouched, no Content-Length announced,
    # and the empty body it would have read.
    assert calls == ["receive"]
    assert seen[0][0] is scope
    assert seen[0][1] == {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.anyio
async def test_http2_body_without_length_is_buffered() -> None:
    # HTTP/2 frames bodies itself: no Content-Length or Transfer-Encoding is needed.
    messages = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    receive, scope, calls = asgi_probe("2", [], messages)
    _, body = await run_probe(ECHO.asgi(), scope, receive)
    assert body == b"abcd"
    assert calls == ["receive", "receive"]  # read whole before the app ran


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "headers", "untouched"),
    [
        pytest.param({"body_timeout": None}, [(b"content-length", b"4")], True, id="declared"),
        pytest.param({"body_timeout": None, "max_body_size": None}, [], True, id="no-limit"),
        pytest.param({}, [(b"content-length", b"4")], False, id="timed"),
        pytest.param({"body_timeout": None, "body_deadline": 5.0}, [], False, id="deadline"),
        pytest.param(
            {"body_timeout": None}, [(b"transfer-encoding", b"chunked")], False, id="chunked"
        ),
    ],
)
async def test_stream_with_nothing_to_watch_leaves_the_request_alone(
    options: dict[str, Any], headers: list[tuple[bytes, bytes]], untouched: bool
) -> None:
    # Nothing to watch: the server delivers exactly a declared length, so with no timeout
    # and no deadline the app gets the server's own scope and receive.
    message = {"type": "http.request", "body": b"abcd", "more_body": False}
    receive, scope, _ = asgi_probe("1.1", headers, [message])
    seen: list[Any] = []

    async def app(app_scope: Any, app_receive: Any, send: Any) -> None:
        seen.append((app_scope, app_receive, await app_receive()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await RequestBuffering(app, mode="stream", **options)(scope, receive, send)
    assert [m.get("status") for m in sent] == [200, None]
    assert seen[0][0] is scope
    assert (seen[0][1] is receive) is untouched
    assert seen[0][2] == message


def test_wsgi_get_without_length_is_forwarded_unread() -> None:
    environ = environ_for("")
    environ["REQUEST_METHOD"] = "GET"
    del environ["CONTENT_LENGTH"]
    body_input = environ["wsgi.input"]
    seen: list[Environ] = []

    def app(app_environ: Environ, start_response: Any) -> Iterable[bytes]:
        seen.append(app_environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    status, body = call_environ(RequestBuffering(validator(app)), environ)
    assert (status, body) == ("200 OK", b"ok")
    assert "CONTENT_LENGTH" not in seen[0]  # no replayed body announced
    assert body_input.tell() == 0  # nothing read


def environ_for(content_length: str, body: bytes = b"") -> Environ:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": content_length,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call_environ(app: Any, environ: Environ) -> tuple[str, bytes]:
    """Call ``app`` with an environ a broken server would send.

    ``wsgiref.validate`` refuses such an environ itself, so it wraps the outer app
    only when the environ is valid; the inner app is always behind it.
    """
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    text = environ.get("CONTENT_LENGTH", "0")
    valid = text.lstrip("+").isdigit()
    iterable = (validator(app) if valid else app)(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return status[0], body


@pytest.mark.parametrize("mode", ["buffer", "stream"])
@pytest.mark.parametrize("value", ["-1", "ten", "+3", " 3 4"])
def test_bad_content_length_wsgi(value: str, mode: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = RequestBuffering(ECHO.wsgi(), mode=mode)
    status, body = call_environ(app, environ_for(value, b"abc"))
    assert status == "400 Bad Request"
    assert body.startswith(b"Bad Request: invalid Content-Length")
    assert len(rejections(caplog)) == 1


# -- logs, files, cancellation -------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["buffer", "stream"])
def test_one_log_line_per_rejection(
    backend: str, mode: Any, caplog: pytest.LogCaptureFixture
) -> None:
    chunked = Request(method="POST", body=[b"a" * 8, b"b" * 8], chunked=True, path="/up")
    options: dict[str, Any] = {"max_body_size": 10, "mode": mode}
    call_asgi(RequestBuffering(ECHO.asgi(), **options), chunked, backend=backend)
    call_wsgi(RequestBuffering(ECHO.wsgi(), **options), chunked)
    records = rejections(caplog)
    assert [r.getMessage() for r in records] == [
        "RequestBuffering refused POST /up (client 127.0.0.1): 413 Content Too Large: "
        "request body crossed the limit 10 while being read"
    ] * 2
    assert all(r.levelno == logging.WARNING for r in records)


def spooling_requests() -> list[Request]:
    chunks = [b"a" * 300, b"b" * 300, b"c" * 300]
    return [
        Request(method="POST", body=chunks, chunked=True),  # completed
        Request(method="POST", body=chunks, chunked=True, disconnect_after=2),  # gone
        Request(method="POST", body=[*chunks, b"x" * 500], chunked=True),  # over the cap
        Request(method="POST", body=chunks, chunked=True, stall_after=2, stall_seconds=5),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_spool_files_never_named_and_always_closed(backend: str, tmp_path: Path) -> None:
    options: dict[str, Any] = {
        "memory_size": 100,
        "max_body_size": 1000,
        "body_timeout": 0.2,
        "spool_dir": tmp_path,
    }
    apps = [ECHO, InnerApp(read_body=False), InnerApp(fail="before_start")]
    before = open_fds()
    for inner in apps:
        for index, request in enumerate(spooling_requests()):
            # Only the first request reaches the app. An app's own error reaches the
            # server, as with no middleware (which answers 500); the spool is closed.
            fails = (
                pytest.raises(RuntimeError, match="inner app failed")
                if inner.fail and index == 0
                else contextlib.nullcontext()
            )
            with fails:
                call_asgi(RequestBuffering(inner.asgi(), **options), request, backend=backend)
            with fails:
                call_wsgi(RequestBuffering(inner.wsgi(), **options), request)
            assert list(tmp_path.iterdir()) == []
    assert open_fds() == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelled_while_buffering_closes_the_spool(backend: str, tmp_path: Path) -> None:
    app = RequestBuffering(ECHO.asgi(), memory_size=10, spool_dir=tmp_path)
    request = Request(
        method="POST", body=[b"a" * 100, b"b"], chunked=True, stall_after=1, stall_seconds=30
    )

    async def main() -> None:
        with anyio.move_on_after(0.2):
            await acall_asgi(app, request)

    before = open_fds()
    anyio.run(main, backend=backend)
    assert open_fds() == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_disk_refusal_is_logged_as_error(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    app = RequestBuffering(ECHO.asgi(), memory_size=1, spool_dir="/proc/no-such-dir")
    result = call_asgi(app, Request(method="POST", body=b"ab"), backend=backend)
    assert result.status == 503
    [record] = rejections(caplog)
    assert record.levelno == logging.ERROR
    assert "cannot create the spool file" in record.getMessage()


class SteppingClock:
    """A clock that moves ``step`` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["buffer", "stream"])
def test_body_deadline_stops_a_drip(backend: str, mode: str) -> None:
    request = Request(method="POST", body=[b"a"] * 20, chunked=True)
    options: dict[str, Any] = {"body_deadline": 5, "mode": mode}
    for result in (
        call_asgi(
            RequestBuffering(ECHO.asgi(), clock=SteppingClock(1.0), **options),
            request,
            backend=backend,
        ),
        call_wsgi(RequestBuffering(ECHO.wsgi(), clock=SteppingClock(1.0), **options), request),
    ):
        assert result.status == 408
        assert b"not complete within body_deadline 5 s" in result.body


def dripping_wsgi_upload(backend: str, body_deadline: float | None) -> tuple[int, bytes]:
    """WsgiToAsgi(RequestBuffering(wsgi app, body_timeout=1)): an 8-byte body, one byte
    per 0.25 s (issue 13 item 8: each wait is for one piece, never for the whole body).

    ``prefetch_size=0``: WsgiToAsgi streams the body, so the WSGI-side middleware sees it
    arrive piece by piece (by default a body this small is received before the app)."""
    from bridge import WsgiToAsgi

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]

    wsgi_app = RequestBuffering(app, body_timeout=1, body_deadline=body_deadline)
    asgi = WsgiToAsgi(wsgi_app, prefetch_size=0)
    scope: dict[str, Any] = dict(Request(method="POST", body=b"x" * 8).scope())
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        dripped = 0

        async def receive() -> dict[str, Any]:
            nonlocal dripped
            if dripped == 8:
                await anyio.sleep(60)  # no disconnect before the response is sent
            if dripped:
                await anyio.sleep(0.25)
            dripped += 1
            return {"type": "http.request", "body": b"x", "more_body": dripped < 8}

        async def send(message: Any) -> None:
            sent.append(message)

        await asgi(scope, receive, send)

    anyio.run(main, backend=backend)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_wsgi_side_buffering_inside_wsgi_to_asgi_reads_a_drip(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = dripping_wsgi_upload(backend, None)
    assert (status, body) == (200, b"got xxxxxxxx")
    assert rejections(caplog) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_wsgi_side_buffering_inside_wsgi_to_asgi_names_the_deadline(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = dripping_wsgi_upload(backend, 0.3)
    assert status == 408
    assert body.startswith(b"Request Timeout: request body not complete within body_deadline 0.3 s")
    assert [r.levelno for r in rejections(caplog)] == [logging.WARNING]


# -- configuration -----------------------------------------------------------------


def wsgi_hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"max_body_size": "ten megs"}, "max_body_size", id="size"),
        pytest.param({"max_body_size": -5}, "max_body_size", id="negative"),
        pytest.param({"memory_size": None}, "memory_size", id="memory-none"),
        pytest.param({"body_timeout": 0}, "body_timeout", id="timeout-zero"),
        pytest.param({"body_deadline": "1m"}, "body_deadline", id="deadline-str"),
        pytest.param({"mode": "spool"}, "mode", id="mode"),
        pytest.param({"error_format": "html"}, "error_format", id="format"),
        pytest.param({"spool_error_status": 507}, "spool_error_status", id="spool-status"),
        pytest.param({"rules": ["/upload"]}, "RequestBufferingRule", id="rules"),
        pytest.param(
            {"rules": [RequestBufferingRule("/u", max_body_size="x")]},
            r"rules\[0\]\.max_body_size",
            id="rule-size",
        ),
        pytest.param({"clock": 3.0}, "clock", id="clock"),
    ],
)
def test_misconfiguration_raises_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        RequestBuffering(wsgi_hello, **options)


def test_same_interface_out() -> None:
    assert RequestBuffering(wsgi_hello).interface == "wsgi"
    assert RequestBuffering(ECHO.asgi()).interface == "asgi"


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_line_escapes_control_characters(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = Request(method="POST", path="/a\nFAKE 200 OK", body=b"x" * 20)
    call_asgi(RequestBuffering(ECHO.asgi(), max_body_size=10), request, backend=backend)
    [record] = rejections(caplog)
    assert "\n" not in record.getMessage()
    assert "POST /a\\nFAKE 200 OK (client" in record.getMessage()
