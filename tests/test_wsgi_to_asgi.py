"""WsgiToAsgi in-process: real Flask and Django through httpx.ASGITransport, and
hand-driven ASGI exchanges for the PEP 3333 edge cases. Every inner app is wrapped
in ``wsgiref.validate.validator``; every test runs on asyncio and trio."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse
from wsgiref.validate import validator

import anyio
import anyio.lowlevel
import httpx
import pytest

from bridge import ClientDisconnected, WsgiToAsgi
from bridge._http.types import Environ
from tests.apps import django_app, flask_app, wsgi_apps
from tests.asgi_driver import Exchange, Message, http_scope

pytestmark = pytest.mark.anyio
LOGGER = "bridge.wsgi_to_asgi"


def client(app: Any, **options: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=WsgiToAsgi(validator(app), **options))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def drive(
    app: Any, exchange: Exchange | None = None, scope: dict[str, Any] | None = None, **opts: Any
) -> Exchange:
    exchange = exchange or Exchange()
    adapter = WsgiToAsgi(validator(app), **opts)
    await adapter(scope or http_scope(), exchange.receive, exchange.send)
    return exchange


@pytest.fixture(autouse=True, params=["learns", "expects-streaming"])
def _adapter_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test on both internal paths: the adapter starts without a task group
    and learns that its app streams, or it already expects streaming."""
    if request.param == "expects-streaming":
        monkeypatch.setattr(WsgiToAsgi, "_expect_streaming", True)


@pytest.fixture(autouse=True)
def _log_info(caplog: pytest.LogCaptureFixture) -> None:
    """Capture everything bridge logs, so "exactly one log line" counts INFO too."""
    caplog.set_level(logging.INFO, logger="bridge")


def bridge_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LOGGER)]


# -- real frameworks -------------------------------------------------------------------


async def test_flask_routes() -> None:
    async with client(flask_app.sized_reads(flask_app.flask)) as c:
        assert (await c.get("/")).text == "Hello from Flask"
        assert (await c.post("/echo", content=b"x" * 300_000)).content == b"x" * 300_000
        form = await c.post("/form", data={"name": "n"}, files={"file": ("f.bin", b"y" * 5000)})
        assert form.json() == {"name": "n", "size": 5000}
        stream = await c.get("/stream")
        assert stream.text == "".join(f"line {i}\n" for i in range(10))
        cookies = await c.get("/cookies")
        assert len(cookies.headers.get_list("set-cookie")) == 2
        served = await c.get("/file")
        assert served.content == flask_app.STATIC.read_bytes()


async def test_flask_app_error_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async with client(flask_app.sized_reads(flask_app.flask)) as c:
        assert (await c.get("/boom")).status_code == 500


async def test_flask_streamed_request_body() -> None:
    async def chunks() -> Any:
        for _ in range(64):
            yield b"z" * 16384

    async with client(flask_app.sized_reads(flask_app.flask), buffer_size=32768) as c:
        response = await c.post("/echo", content=chunks())
        assert response.content == b"z" * (64 * 16384)


async def test_django_routes() -> None:
    django = django_app.validated
    transport = httpx.ASGITransport(app=WsgiToAsgi(django), root_path="/mnt")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/mnt/")).text == "Hello from Django"
        assert (await c.post("/mnt/echo", content=b"abc" * 1000)).content == b"abc" * 1000
        info = (await c.get("/mnt/info?q=%C3%A9", headers={"X-User": "alice"})).json()
        assert info["script_name"] == "/mnt"
        assert info["path_info"] == "/info"
        assert info["query"] == {"q": "é"}
        assert info["x_user"] == "alice"
        spoofed = (await c.get("/mnt/info", headers={"X_User": "mallory"})).json()
        assert spoofed["x_user"] is None
        assert (await c.get("/mnt/stream")).text.count("line") == 10


# -- environ -----------------------------------------------------------------------------


async def test_environ_paths_and_query() -> None:
    async with client(wsgi_apps.router) as c:
        env = (await c.get("/environ", params={"q": "é ü"})).json()
        assert env["QUERY_STRING"] == "q=%C3%A9+%C3%BC"
        assert env["wsgi.multithread"] is True
        assert env["wsgi.run_once"] is False
        assert env["wsgi.input_terminated"] is True
        assert env["SERVER_PORT"] == "80"
    scope = http_scope("/environ", query_string="é=ü".encode(), root_path="")
    exchange = await drive(wsgi_apps.router, scope=scope)
    env = json.loads(exchange.body)
    assert env["QUERY_STRING"] == "é=ü".encode().decode("latin-1")


async def test_non_ascii_path_under_root_path() -> None:
    seen: dict[str, str] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.update(script=environ["SCRIPT_NAME"], path=environ["PATH_INFO"])
        seen.update(uri=environ["REQUEST_URI"])
        return wsgi_apps.hello(environ, start_response)

    scope = http_scope("/mnt/caf\u00e9/x y", root_path="/mnt")
    scope["raw_path"] = b"/mnt/caf%C3%A9/x%20y"
    assert (await drive(app, scope=scope)).status == 200
    assert seen["script"] == "/mnt"
    assert seen["path"] == "/café/x y".encode().decode("latin-1")
    assert seen["uri"] == "/mnt/caf%C3%A9/x%20y"


async def test_many_duplicate_headers_answered_431(caplog: pytest.LogCaptureFixture) -> None:
    headers = [(b"x-dup", b"v")] * 10_000
    exchange = await drive(wsgi_apps.router, scope=http_scope("/environ", headers=headers))
    assert exchange.status == 431
    assert len(bridge_records(caplog)) == 1
    assert "header lines" in bridge_records(caplog)[0].getMessage()


async def test_duplicate_headers_joined_when_allowed() -> None:
    headers = [(b"x-dup", b"v")] * 10_000
    scope = http_scope("/environ", headers=headers)
    exchange = await drive(wsgi_apps.router, scope=scope, max_header_lines=20_000)
    assert json.loads(exchange.body)["HTTP_X_DUP"] == ", ".join(["v"] * 10_000)


async def test_underscore_headers_configurable(caplog: pytest.LogCaptureFixture) -> None:
    headers = [(b"x_user", b"mallory")]
    dropped = json.loads(
        (await drive(wsgi_apps.router, scope=http_scope("/environ", headers=headers))).body
    )
    assert "HTTP_X_USER" not in dropped
    kept = await drive(
        wsgi_apps.router,
        scope=http_scope("/environ", headers=headers),
        allow_underscores_in_headers=True,
    )
    assert json.loads(kept.body)["HTTP_X_USER"] == "mallory"
    records = bridge_records(caplog)
    assert len(records) == 1  # the dropped header, once; none when they are allowed
    assert "'x_user'" in records[0].getMessage()


async def test_contextvars_reach_the_thread() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("caller")
    var.set("from the caller")
    seen = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(var.get("missing"))
        return wsgi_apps.hello(environ, start_response)

    await drive(app)
    assert seen == ["from the caller"]


async def test_wsgi_errors_goes_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        print("something odd", file=environ["wsgi.errors"])
        return wsgi_apps.hello(environ, start_response)

    with caplog.at_level(logging.INFO):
        await drive(app)
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER + ".errors"] == [
        "something odd"
    ]


# -- response semantics ------------------------------------------------------------------


class Tracked:
    """A response iterable that records ``close()``; optional failure after ``fail_after``."""

    def __init__(self, chunks: Iterable[Any], fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.closed = threading.Event()
        self.produced = 0

    def __iter__(self) -> Iterator[Any]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_after:
                raise RuntimeError("iterable failed mid-stream")
            self.produced += 1
            yield chunk

    def close(self) -> None:
        self.closed.set()


def app_returning(result: Any, headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", headers or [("Content-Type", "text/plain")])
        return result

    return app


async def test_write_callable_in_order_with_iterable() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c", b"d"]

    exchange = await drive(app)
    assert exchange.body == b"abcd"
    assert exchange.complete


async def test_exc_info_before_body_replaces_status() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late problem")
        except ValueError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"sorry"]

    exchange = await drive(app)
    assert (exchange.status, exchange.body) == (503, b"sorry")


async def test_exc_info_after_body_reraises_and_aborts(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late problem")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"

    exchange = await drive(app)
    assert exchange.status == 200
    assert exchange.body == b"partial"
    assert not exchange.complete  # no second response, no clean end
    assert len(bridge_records(caplog)) == 1


async def test_headers_held_until_first_non_empty_chunk() -> None:
    tracked = Tracked([b"", b"", b"x"], fail_after=2)
    exchange = await drive(app_returning(tracked))
    assert exchange.status == 500  # nothing was sent before the failure
    assert exchange.complete
    assert tracked.closed.is_set()


async def test_iterable_failing_after_headers_aborts(caplog: pytest.LogCaptureFixture) -> None:
    tracked = Tracked([b"one", b"two", b"three"], fail_after=2)
    exchange = await drive(app_returning(tracked))
    assert (exchange.status, exchange.body) == (200, b"onetwo")
    assert not exchange.complete
    assert tracked.closed.is_set()
    records = bridge_records(caplog)
    assert len(records) == 1
    assert "after the response started" in records[0].getMessage()


async def test_empty_response_sends_headers_at_end() -> None:
    exchange = await drive(app_returning([]))
    assert exchange.status == 200
    assert exchange.body == b""
    assert exchange.complete


@pytest.mark.parametrize(
    ("app", "problem"),
    [
        pytest.param(app_returning(["text"]), "str, not bytes", id="str-chunk"),
        pytest.param(app_returning(None), "returned None", id="none"),
        pytest.param(
            lambda environ, start_response: [b"x"], "before calling start_response", id="no-start"
        ),
        pytest.param(
            lambda environ, start_response: [],
            "without calling start_response",
            id="no-start-empty",
        ),
        pytest.param(
            lambda environ, start_response: (
                (start_response("200 OK", []), start_response("200 OK", [])) and [b""]
            ),
            "called twice",
            id="start-twice",
        ),
        pytest.param(
            app_returning([b"x"], [("X-Bad", "a\r\nInjected: 1")]),
            "contains CR, LF or NUL",
            id="crlf",
        ),
        pytest.param(app_returning([b"x"], [("X-Bad", "\u20ac")]), "latin-1", id="non-latin1"),
        pytest.param(
            lambda environ, start_response: start_response("OK", []) and [b""],
            "invalid status",
            id="status",
        ),
        pytest.param(lambda environ, start_response: 1 / 0, "division", id="raises-before-start"),
    ],
)
async def test_broken_apps_get_500_and_one_log_line(
    app: Any, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No validator here: these apps break PEP 3333 on purpose, and the validator would
    # stop them with its own AssertionError before the adapter's checks are reached.
    exchange = Exchange()
    await WsgiToAsgi(app)(http_scope(), exchange.receive, exchange.send)
    assert exchange.status == 500
    assert exchange.complete
    records = bridge_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert problem in records[0].getMessage()


async def test_response_longer_than_content_length_is_trimmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracked = Tracked([b"12345", b"67890"])
    exchange = await drive(
        app_returning(tracked, [("Content-Type", "text/plain"), ("Content-Length", "7")])
    )
    assert exchange.body == b"1234567"
    assert exchange.complete
    assert tracked.closed.is_set()
    assert len(bridge_records(caplog)) == 1


async def test_response_shorter_than_content_length_is_aborted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracked = Tracked([b"12345"])
    exchange = await drive(
        app_returning(tracked, [("Content-Type", "text/plain"), ("Content-Length", "10")])
    )
    assert exchange.body == b"12345"
    assert not exchange.complete
    assert tracked.closed.is_set()
    assert "Content-Length" in bridge_records(caplog)[0].getMessage()


async def test_head_response_keeps_content_length_without_body() -> None:
    exchange = await drive(
        app_returning([], [("Content-Type", "text/plain"), ("Content-Length", "10")]),
        scope=http_scope(method="HEAD"),
    )
    assert exchange.status == 200
    assert exchange.complete
    assert (b"content-length", b"10") in exchange.headers()


# -- request body ------------------------------------------------------------------------


def body_messages(*chunks: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]


async def test_a_1_mib_body_at_hand_is_queued_without_the_app_reading() -> None:
    """By default up to 1 MiB of request body waits for the app: the pump takes a 1 MiB
    upload the server holds while the app has not read a byte, so it crosses in one
    thread hand-off (with a smaller bound the pump would wait for room the app never
    makes)."""
    exchange = Exchange(body_messages(*[b"u" * 65536] * 16))
    all_received = threading.Event()
    receive = exchange.receive

    async def counting_receive() -> Message:
        message = await receive()
        if not exchange.incoming:
            all_received.set()
        return message

    exchange.receive = counting_receive  # type: ignore[method-assign]

    waited: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # A deadlock guard, not a speed limit: a smaller bound never sets the event.
        waited.append(all_received.wait(10))
        size = 0
        while chunk := environ["wsgi.input"].read(65536):
            size += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(size).encode()]

    await drive(app, exchange, http_scope("/", method="POST"))
    assert exchange.body == str(16 * 65536).encode()
    assert waited == [True]


def declared(length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(length).encode())]


def counting_app(log: list[str], started: threading.Event | None = None) -> Any:
    """Records when the app starts and how many body bytes it then reads."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        log.append("app started")
        if started is not None:
            started.set()
        size = 0
        while chunk := environ["wsgi.input"].read(65536):
            size += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(size).encode()]

    return app


def logging_receive(exchange: Exchange, log: list[str]) -> None:
    receive = exchange.receive

    async def receive_and_log() -> Message:
        message = await receive()
        log.append(f"received {len(message.get('body', b''))}")
        return message

    exchange.receive = receive_and_log  # type: ignore[method-assign]


async def test_a_body_within_prefetch_size_is_received_before_the_app_starts() -> None:
    """No worker thread waits on the client: the app starts once the whole body is in,
    and reads it without a hand-off."""
    log: list[str] = []
    exchange = Exchange(body_messages(b"a" * 100, b"b" * 100, b"c" * 100))
    logging_receive(exchange, log)
    scope = http_scope("/", method="POST", headers=declared(300))
    await drive(counting_app(log), exchange, scope)
    assert exchange.body == b"300"
    assert log[:4] == ["received 100", "received 100", "received 100", "app started"]


@pytest.mark.parametrize(
    ("options", "length", "headers"),
    [
        pytest.param({"prefetch_size": 0}, 300, True, id="prefetch-size-0"),
        pytest.param({"prefetch_size": 299}, 300, True, id="declared-longer"),
        pytest.param({}, 300, False, id="unknown-length"),
    ],
)
async def test_other_bodies_stream_as_the_app_reads(
    options: dict[str, Any], length: int, headers: bool
) -> None:
    log: list[str] = []
    exchange = Exchange(body_messages(b"a" * 100, b"b" * 100, b"c" * 100))
    logging_receive(exchange, log)
    receive = exchange.receive
    started = threading.Event()

    async def receive_after_the_app_started() -> Message:
        if log:  # the first message is in: the rest only come once the app runs
            # (a deadlock guard of 10 s, not a speed limit)
            await anyio.to_thread.run_sync(started.wait, 10)
        return await receive()

    exchange.receive = receive_after_the_app_started  # type: ignore[method-assign]
    scope = http_scope("/", method="POST", headers=declared(length) if headers else [])
    await drive(counting_app(log, started), exchange, scope, **options)
    assert exchange.body == b"300"
    assert log == ["received 100", "app started", "received 100", "received 100"]


async def test_a_client_gone_before_a_prefetched_body_ends_never_starts_the_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    exchange = Exchange([body_messages(b"a", b"b")[0], {"type": "http.disconnect"}])
    scope = http_scope("/", method="POST", headers=declared(2))
    await drive(counting_app(log), exchange, scope)
    assert log == []
    assert exchange.sent == []
    records = bridge_records(caplog)
    assert [r.levelno for r in records] == [logging.INFO]
    assert "disconnected before its body ended" in records[0].getMessage()


async def test_a_refused_head_is_answered_before_its_body_is_received() -> None:
    log: list[str] = []
    exchange = Exchange(body_messages(b"a", b"b", b"c"))
    headers = declared(3) + [(b"x-many", b"1")] * 10
    scope = http_scope("/", method="POST", headers=headers)
    await drive(counting_app(log), exchange, scope, max_header_lines=5)
    assert exchange.status == 431
    assert log == []
    assert len(exchange.incoming) == 2  # only the first body message was taken


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_prefetch_size_must_be_a_byte_count(value: Any) -> None:
    with pytest.raises(ValueError, match="prefetch_size must be an int of bytes"):
        WsgiToAsgi(wsgi_apps.hello, prefetch_size=value)


async def test_streamed_body_read_apis() -> None:
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        seen["first"] = stream.read(3)
        seen["line"] = stream.readline()
        seen["lines"] = stream.readlines()
        seen["rest"] = stream.read(10)
        return wsgi_apps.hello(environ, start_response)

    exchange = Exchange(body_messages(b"abcde", b"f\ng", b"h\n", b"i\nj", b""))
    await drive(app, exchange)
    assert seen == {
        "first": b"abc",
        "line": b"def\n",
        "lines": [b"gh\n", b"i\n", b"j"],
        "rest": b"",
    }


async def test_disconnect_mid_upload_raises_oserror(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["wsgi.input"].read(100)
        except OSError as exc:
            errors.append(exc)
            raise
        return wsgi_apps.hello(environ, start_response)

    incoming: list[Message] = [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.disconnect"},
    ]
    exchange = await drive(app, Exchange(incoming))
    assert exchange.sent == []
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)
    assert "disconnected" in str(errors[0])
    assert len(bridge_records(caplog)) == 1


@pytest.mark.parametrize(
    ("declared", "chunks"),
    [
        pytest.param(b"10", (b"abc", b"de"), id="shorter"),
        pytest.param(b"3", (b"abc", b"de"), id="longer-streamed"),
        pytest.param(b"3", (b"abcde",), id="longer-complete"),
    ],
)
async def test_body_disagreeing_with_content_length_is_400(
    declared: bytes, chunks: tuple[bytes, ...], caplog: pytest.LogCaptureFixture
) -> None:
    scope = http_scope("/echo", method="POST", headers=[(b"content-length", declared)])
    exchange = await drive(wsgi_apps.router, Exchange(body_messages(*chunks)), scope)
    assert exchange.status == 400
    assert exchange.complete
    records = bridge_records(caplog)
    assert len(records) == 1
    assert "Content-Length" in records[0].getMessage()


# -- disconnects, failing send(), cancellation: close() always, thread always released ---


async def test_client_disconnect_mid_download_closes_iterable() -> None:
    tracked = Tracked([b"x" * 65536] * 10_000)
    exchange = Exchange()

    async def on_send(message: Message) -> None:
        if len(exchange.sent) == 3:
            exchange.disconnect()

    exchange.on_send = on_send
    await drive(app_returning(tracked), exchange)
    assert tracked.closed.is_set()
    assert not exchange.complete
    assert tracked.produced < 100


@pytest.mark.parametrize("error", [OSError("connection reset"), RuntimeError("server bug")])
async def test_send_raising_releases_the_thread(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    tracked = Tracked([b"x" * 65536] * 10_000)

    async def on_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise error

    exchange = Exchange(on_send=on_send)
    if isinstance(error, OSError):
        await drive(app_returning(tracked), exchange)
    else:
        with pytest.raises(RuntimeError, match="server bug"):
            await drive(app_returning(tracked), exchange)
    assert tracked.closed.is_set()
    assert tracked.produced < 100
    records = bridge_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "send() raised" in records[0].getMessage()


async def test_send_raising_on_fast_path() -> None:
    async def on_send(message: Message) -> None:
        raise OSError("connection reset")

    tracked = Tracked([b"x"])
    await drive(app_returning(tracked), Exchange(on_send=on_send))
    assert tracked.closed.is_set()


async def test_cancellation_while_streaming_closes_iterable() -> None:
    tracked = Tracked([b"x" * 65536] * 10_000)
    started = anyio.Event()

    async def on_send(message: Message) -> None:
        started.set()
        await anyio.sleep_forever()

    exchange = Exchange(on_send=on_send)
    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, app_returning(tracked), exchange)
        await started.wait()
        tg.cancel_scope.cancel()
    assert tracked.closed.is_set()


async def test_cancellation_during_upload_releases_reader() -> None:
    reading = threading.Event()
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        reading.set()
        try:
            environ["wsgi.input"].read(100_000)
        except OSError as exc:
            errors.append(exc)
            raise
        return wsgi_apps.hello(environ, start_response)

    exchange = Exchange([{"type": "http.request", "body": b"abc", "more_body": True}])
    exchange.gone = anyio.Event()  # receive() blocks: the client is slow, not gone
    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, app, exchange)
        await anyio.to_thread.run_sync(reading.wait, 20)
        tg.cancel_scope.cancel()
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)


async def test_backpressure_bounds_what_the_app_runs_ahead() -> None:
    chunk = 16384
    tracked = Tracked([b"x" * chunk] * 400)
    received = 0
    worst = 0

    async def on_send(message: Message) -> None:
        nonlocal received, worst
        received += len(message.get("body", b""))
        worst = max(worst, tracked.produced * chunk - received)
        await anyio.lowlevel.checkpoint()

    await drive(app_returning(tracked), Exchange(on_send=on_send), buffer_size=65536)
    assert received == 400 * chunk
    # at most two buffers (one queued, one being sent) plus the chunk in the app's hands
    assert worst <= 2 * 65536 + 2 * chunk


# -- file_wrapper and pathsend -------------------------------------------------------------


def file_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    wrapper = environ["wsgi.file_wrapper"]
    file = open(flask_app.STATIC, "rb")  # noqa: SIM115 - the server closes it through the wrapper
    result: Iterable[bytes] = wrapper(file, 4096)
    return result


async def test_file_wrapper_uses_pathsend_when_offered() -> None:
    # No validator here: its IteratorWrapper hides the file wrapper (as any wrapping
    # middleware would), and then the adapter streams instead -- tested below.
    scope = http_scope(extensions={"http.response.pathsend": {}})
    exchange = Exchange()
    await WsgiToAsgi(file_app)(scope, exchange.receive, exchange.send)
    assert exchange.status == 200
    assert exchange.sent[-1] == {"type": "http.response.pathsend", "path": str(flask_app.STATIC)}


async def test_file_wrapper_streams_without_pathsend() -> None:
    exchange = await drive(file_app)
    assert exchange.body == flask_app.STATIC.read_bytes()
    assert exchange.complete


# -- other scopes, configuration ----------------------------------------------------------


async def test_lifespan_completes() -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    exchange = Exchange(incoming)
    await WsgiToAsgi(wsgi_apps.hello)({"type": "lifespan"}, exchange.receive, exchange.send)
    assert [m["type"] for m in exchange.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_websocket_is_closed() -> None:
    exchange = Exchange([{"type": "websocket.connect"}])
    scope = {**http_scope(), "type": "websocket"}
    await WsgiToAsgi(wsgi_apps.hello)(scope, exchange.receive, exchange.send)
    assert exchange.sent == [{"type": "websocket.close", "code": 1000}]


async def test_unknown_scope_type_raises() -> None:
    with pytest.raises(ValueError, match="scope type 'telepathy'"):
        await WsgiToAsgi(wsgi_apps.hello)(
            {"type": "telepathy"}, Exchange().receive, Exchange().send
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"app": "not an app"}, "needs a WSGI application", id="app"),
        pytest.param({"buffer_size": 0}, "buffer_size must be a positive int", id="buffer"),
        pytest.param({"max_header_lines": -1}, "max_header_lines", id="headers"),
        pytest.param({"limiter": 4}, "CapacityLimiter", id="limiter"),
        pytest.param({"response_timeout": 0}, "response_timeout.*positive", id="timeout-0"),
        pytest.param({"response_timeout": "5"}, "response_timeout.*seconds", id="timeout-str"),
        pytest.param({"response_timeout": True}, "response_timeout", id="timeout-bool"),
    ],
)
def test_misconfiguration_raises_at_construction(options: dict[str, Any], message: str) -> None:
    kwargs = {"app": wsgi_apps.hello, **options}
    app = kwargs.pop("app")
    with pytest.raises((TypeError, ValueError), match=message):
        WsgiToAsgi(app, **kwargs)


def test_is_detected_as_asgi3() -> None:
    import inspect

    assert inspect.iscoroutinefunction(WsgiToAsgi(wsgi_apps.hello).__call__)


# -- threads -------------------------------------------------------------------------------


async def test_slow_requests_overlap_up_to_the_limiter() -> None:
    count = 8
    barrier = threading.Barrier(count, timeout=30)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        barrier.wait()  # only returns once all `count` requests are inside the app at once
        return wsgi_apps.hello(environ, start_response)

    limiter = anyio.CapacityLimiter(count)
    async with client(app, limiter=limiter) as c:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await c.get("/")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    assert statuses == [200] * count


async def test_injected_limiter_bounds_concurrency() -> None:
    release = threading.Event()
    lock = threading.Lock()
    active = 0
    peak = 0

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(30)
        with lock:
            active -= 1
        return wsgi_apps.hello(environ, start_response)

    limiter = anyio.CapacityLimiter(2)
    async with client(app, limiter=limiter) as c, anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(c.get, "/")
        with anyio.fail_after(20):
            # a token is borrowed before its thread enters the app: wait for both
            while limiter.statistics().tasks_waiting < 4 or active < 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert limiter.borrowed_tokens == 2
        release.set()
    assert peak == 2


async def test_generator_context_survives_between_thread_calls() -> None:
    """A generator that sets a context variable and resets it with its token later
    (Flask's stream_with_context) runs in one Context across all its chunks."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("generator_var")

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        token = var.set("inside")
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first "
        yield var.get("lost").encode()
        var.reset(token)

    exchange = await drive(app)
    assert exchange.body == b"first inside"
    assert exchange.complete


async def test_mounted_in_fastapi() -> None:
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    api.mount("/legacy", WsgiToAsgi(validator(flask_app.sized_reads(flask_app.flask))))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/api/health")).json() == {"status": "ok"}
        assert (await c.get("/legacy/")).text == "Hello from Flask"
        seen = (await c.get("/legacy/thread")).json()
        assert (seen["root"], seen["path"]) == ("/legacy", "/thread")
        assert (await c.post("/legacy/echo", content=b"m" * 70_000)).content == b"m" * 70_000


async def test_close_raising_is_logged_and_response_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BadClose(Tracked):
        def close(self) -> None:
            super().close()
            raise RuntimeError("close failed")

    tracked = BadClose([b"a", b"b"])
    exchange = await drive(app_returning(tracked))
    assert exchange.body == b"ab"
    assert exchange.complete
    records = bridge_records(caplog)
    assert len(records) == 1
    assert "close() raised" in records[0].getMessage()


async def test_client_gone_before_request(caplog: pytest.LogCaptureFixture) -> None:
    exchange = await drive(wsgi_apps.hello, Exchange([{"type": "http.disconnect"}]))
    assert exchange.sent == []
    assert len(bridge_records(caplog)) == 1


async def test_adapter_learns_whether_its_app_streams() -> None:
    streamed = True

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"b"]) if streamed else [b"ab"]

    # No validator: it wraps every response in an iterator, so a list would stream.
    adapter = WsgiToAsgi(app)
    for expect_after, streamed in ((True, True), (True, True), (False, False), (False, False)):  # noqa: B007 - app reads it
        exchange = Exchange()
        await adapter(http_scope(), exchange.receive, exchange.send)
        assert (exchange.body, exchange.complete) == (b"ab", True)
        assert adapter._expect_streaming is expect_after


MODULE_LEVEL_LIMITER = anyio.CapacityLimiter(3)  # created outside any event loop


async def test_limiter_created_outside_the_loop(anyio_backend: tuple[str, Any]) -> None:
    # anyio binds such a limiter to the first library that uses it: one per backend here.
    limiter = MODULE_LEVEL_LIMITER if anyio_backend[0] == "asyncio" else anyio.CapacityLimiter(3)
    exchange = await drive(wsgi_apps.hello, limiter=limiter)
    assert (exchange.status, exchange.body) == (200, b"Hello, world!")


def _refuse_unread(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"nope"]


def _refuse_unread_streamed(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("401 Unauthorized", [("Content-Type", "text/plain")])
    yield b"nope"


@pytest.mark.parametrize("refuse", [_refuse_unread, _refuse_unread_streamed])
async def test_unread_request_body_is_discarded_before_returning(refuse: Any) -> None:
    """Issue 13 item 16: the app refuses a large upload unread; the call drains the rest.

    Returning with the server's receive queue still full makes hypercorn block forever
    putting ``http.disconnect`` into it (the connection leaks); so every body message
    the client sends must be received, and none kept.
    """
    chunk = b"x" * 64 * 1024
    body = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(64)]
    exchange = Exchange([*body, {"type": "http.request", "body": b"", "more_body": False}])
    app = WsgiToAsgi(validator(refuse), buffer_size=64 * 1024)
    headers = [(b"content-length", str(64 * len(chunk)).encode())]
    await app(http_scope("/up", method="POST", headers=headers), exchange.receive, exchange.send)
    assert (exchange.status, exchange.body, exchange.complete) == (401, b"nope", True)
    assert exchange.incoming == []  # the whole body was received (and dropped)


class LastSendWaitsForTheBody(Exchange):
    """As hypercorn: ``send()`` of the last body message puts ``http.disconnect`` into
    the request's receive queue, and waits until the app has made room in it."""

    def __init__(self, incoming: list[Message]) -> None:
        super().__init__(incoming)
        self.drained = anyio.Event()

    async def receive(self) -> Message:
        message = await super().receive()
        if not self.incoming:
            self.drained.set()
        return message

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await self.drained.wait()


@pytest.mark.parametrize("refuse", [_refuse_unread, _refuse_unread_streamed])
async def test_unread_request_body_is_received_while_the_response_is_sent(refuse: Any) -> None:
    """Issue 13 item 16 under hypercorn: the body must be drained while the last send
    waits, not only after it (that wait would last forever: the connection leaks)."""
    chunk = b"x" * 64 * 1024
    body = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(64)]
    exchange = LastSendWaitsForTheBody([*body, {"type": "http.request", "more_body": False}])
    app = WsgiToAsgi(validator(refuse), buffer_size=64 * 1024)
    headers = [(b"content-length", str(64 * len(chunk)).encode())]
    scope = http_scope("/up", method="POST", headers=headers)
    with anyio.fail_after(20):
        await app(scope, exchange.receive, exchange.send)
    assert (exchange.status, exchange.body, exchange.complete) == (401, b"nope", True)
    assert exchange.incoming == []


async def test_unread_request_body_discard_stops_at_disconnect() -> None:
    chunk = b"x" * 64 * 1024
    body = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(16)]
    exchange = Exchange(body)  # then the client goes away mid-body
    exchange.disconnect()
    app = WsgiToAsgi(validator(_refuse_unread), buffer_size=64 * 1024)
    await app(http_scope("/up", method="POST"), exchange.receive, exchange.send)
    assert (exchange.status, exchange.incoming) == (401, [])


async def test_iteration_stops_at_the_declared_content_length() -> None:
    """PEP 3333: after Content-Length bytes, the iterable is not pulled again, only closed."""
    tracked = Tracked([b"hello", b"never pulled"], fail_after=1)
    exchange = await drive(
        app_returning(tracked, [("Content-Type", "text/plain"), ("Content-Length", "5")])
    )
    assert exchange.body == b"hello"
    assert exchange.complete
    assert tracked.produced == 1
    assert tracked.closed.is_set()


class BlocksAfterItsLength:
    """A response that declares 5 bytes, yields them, then blocks (or raises) if pulled again."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.pulled_again = False
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield b"hello"
        self.pulled_again = True
        if self.fail:
            raise RuntimeError("failed after the last byte")
        self.closed.wait(10)  # would hold the complete response this long

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("fail", [False, True], ids=["blocks", "raises"])
@pytest.mark.parametrize("upload", [False, True], ids=["no-body", "unread-upload"])
async def test_a_complete_response_ends_without_pulling_the_iterable_again(
    fail: bool, upload: bool
) -> None:
    """Issue 13 item 5 (PEP 3333): once the app has produced its Content-Length, the
    response ends and the iterable is closed, never pulled again; a request body the
    app left unread is still received and dropped."""
    response = BlocksAfterItsLength(fail=fail)
    chunk = b"x" * 64 * 1024
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for _ in range(8)
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    exchange = Exchange(messages) if upload else Exchange()
    headers = [(b"content-length", str(8 * len(chunk)).encode())] if upload else []
    scope = http_scope("/done", method="POST" if upload else "GET", headers=headers)
    app = app_returning(response, [("Content-Type", "text/plain"), ("Content-Length", "5")])
    await drive(app, exchange, scope, buffer_size=64 * 1024)
    assert (exchange.status, exchange.body, exchange.complete) == (200, b"hello", True)
    assert not response.pulled_again
    assert response.closed.is_set()
    assert exchange.incoming == []


# -- response_timeout (issue 13 item 14) ----------------------------------------------------


class HungApp:
    """A WSGI app that blocks before starting its response until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.returned = threading.Event()
        self.calls = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.calls += 1
        self.entered.set()
        self.release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        self.returned.set()
        return [b"late"]


async def test_response_timeout_answers_504_and_the_thread_keeps_its_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hung = HungApp()
    limiter = anyio.CapacityLimiter(1)
    adapter = WsgiToAsgi(validator(hung), response_timeout=0.2, limiter=limiter)
    answered = anyio.Event()

    async def on_send(message: Message) -> None:
        if not message.get("more_body", True):
            answered.set()

    exchange = Exchange(on_send=on_send)
    async with anyio.create_task_group() as tg:
        tg.start_soon(adapter, http_scope("/hang"), exchange.receive, exchange.send)
        await answered.wait()
        assert exchange.status == 504
        assert exchange.complete
        assert exchange.body == b"Gateway Timeout\n"
        assert (b"connection", b"close") in exchange.headers()
        assert limiter.borrowed_tokens == 1  # the app still runs and holds its token
        assert not hung.returned.is_set()
        hung.release.set()
    assert hung.returned.is_set()
    assert limiter.borrowed_tokens == 0
    assert [m["type"] for m in exchange.sent].count("http.response.start") == 1  # never "late"
    errors = [r for r in bridge_records(caplog) if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        "WsgiToAsgi timed out GET /hang (client 127.0.0.1): "
        "the application started no response within 0.2s; answered 504"
    ]


async def test_response_timeout_while_waiting_for_a_token_never_runs_the_app() -> None:
    hung, waiting = HungApp(), HungApp()
    limiter = anyio.CapacityLimiter(1)
    first = Exchange()
    second = Exchange()
    async with anyio.create_task_group() as tg:
        tg.start_soon(WsgiToAsgi(hung, limiter=limiter), http_scope(), first.receive, first.send)
        await anyio.to_thread.run_sync(hung.entered.wait, 10)
        adapter = WsgiToAsgi(waiting, limiter=limiter, response_timeout=0.1)
        await adapter(http_scope("/queued"), second.receive, second.send)
        assert second.status == 504
        assert limiter.borrowed_tokens == 1  # the first request's only
        hung.release.set()
    assert first.status == 200
    assert waiting.calls == 0


async def test_response_timeout_is_renewed_by_each_body_chunk_the_app_reads() -> None:
    """An upload slower in total than the timeout, with each chunk well inside it."""
    chunks = 0

    async def receive() -> Message:
        nonlocal chunks
        if chunks:
            await anyio.sleep(0.3)
        chunks += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": chunks < 6}

    exchange = Exchange()
    adapter = WsgiToAsgi(validator(wsgi_apps.echo), response_timeout=1.0)
    await adapter(http_scope("/echo", method="POST"), receive, exchange.send)
    assert (exchange.status, exchange.body) == (200, b"x" * 6144)


async def test_a_response_inside_the_timeout_is_untouched() -> None:
    exchange = await drive(wsgi_apps.hello, response_timeout=5)
    assert (exchange.status, exchange.body) == (200, b"Hello, world!")
    streamed = app_returning(Tracked([b"a", b"b", b"c"]))
    exchange = await drive(streamed, response_timeout=5)
    assert (exchange.status, exchange.body, exchange.complete) == (200, b"abc", True)


async def test_response_timeout_with_an_unread_upload_under_a_send_that_waits() -> None:
    """As under hypercorn, whose last send waits for room in the receive queue: the 504
    goes out while the app hangs (the body is drained meanwhile), and once the app
    returns, the call returns too."""
    hung = HungApp()
    chunk = b"x" * 64 * 1024
    body = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(32)]
    exchange = LastSendWaitsForTheBody([*body, {"type": "http.request", "more_body": False}])
    limiter = anyio.CapacityLimiter(1)
    app = WsgiToAsgi(hung, response_timeout=0.2, limiter=limiter, buffer_size=64 * 1024)
    scope = http_scope("/up", method="POST")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, scope, exchange.receive, exchange.send)
            await exchange.drained.wait()
            await anyio.to_thread.run_sync(hung.entered.wait, 10)
            assert (exchange.status, exchange.complete) == (504, True)  # the app still hangs
            assert limiter.borrowed_tokens == 1  # and holds its token
            hung.release.set()
    assert (exchange.status, exchange.complete, exchange.incoming) == (504, True, [])
    assert limiter.borrowed_tokens == 0
