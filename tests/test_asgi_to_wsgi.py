"""AsgiToWsgi in-process: scope, body, response streaming, errors and bad input.

Every call goes through ``wsgiref.validate.validator``; every test runs on the
asyncio and trio background loops.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import anyio
import anyio.lowlevel
import pytest

from bridge import AsgiToWsgi, ClientDisconnected
from tests.apps.asgi_apps import TEXT, Asgi2App, Receive, Send, echo, hello, read_body, show_scope

from .asgi_to_wsgi_helpers import (
    BrokenInput,
    call,
    call_unvalidated,
    close,
    environ_for,
    errors,
    get,
    refusals,
    start,
)

Make = Callable[..., AsgiToWsgi]
App = Callable[[dict[str, Any], Receive, Send], Any]


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make(backend: str) -> Iterator[Make]:
    adapters: list[AsgiToWsgi] = []

    def _make(app: Any, **options: Any) -> AsgiToWsgi:
        options.setdefault("backend", backend)
        options.setdefault("lifespan", "off")  # most test apps here only speak http
        adapter = AsgiToWsgi(app, **options)
        adapters.append(adapter)
        return adapter

    yield _make
    for adapter in adapters:
        adapter.close()


async def wait_for(flag: threading.Event) -> None:
    """Inside an app: wait for a flag the test thread controls."""
    while not flag.is_set():  # noqa: ASYNC110 - set by another thread, not on this loop
        await anyio.sleep(0.002)


# -- basics and scope ---------------------------------------------------------


def test_hello(make: Make) -> None:
    recorder, body = get(make(hello))
    assert recorder.status == "200 OK"
    assert recorder.headers == [("content-type", "text/plain")]
    assert body == b"Hello, world!"


def test_scope_mapping(make: Make) -> None:
    environ = environ_for(
        "/caf%C3%A9",
        method="POST",
        query_string="a=1&b=%20",
        headers=[("X-Thing", "one"), ("Accept", "a"), ("Accept", "b")],
        data=b"12345",
        content_type="text/plain",
        base_url="https://example.org:8443/mnt",
        environ_base={"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555"},
    )
    environ["REQUEST_URI"] = "/mnt/caf%C3%A9?a=1&b=%20"
    environ["SERVER_PROTOCOL"] = "HTTP/1.0"
    recorder, body = call(make(show_scope, lifespan="on"), environ)
    scope = json.loads(body)
    assert recorder.code == 200
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/mnt/café"
    assert scope["root_path"] == "/mnt"
    assert scope["raw_path"] == "/mnt/caf%C3%A9"
    assert scope["query_string"] == "a=1&b=%20"
    assert ["x-thing", "one"] in scope["headers"]
    assert ["accept", "a, b"] in scope["headers"]
    assert ["content-type", "text/plain"] in scope["headers"]
    assert ["content-length", "5"] in scope["headers"]
    assert scope["client"] == ["10.0.0.1", 5555]
    assert scope["server"] == ["example.org", 8443]
    assert scope["state"] == ["started_by"]
    assert scope["extensions"] == []
    assert scope["body_length"] == 5


def test_pathsend_is_advertised_only_with_a_file_wrapper(make: Make) -> None:
    environ = environ_for("/")
    environ["wsgi.file_wrapper"] = FileWrapper
    _, body = call(make(show_scope), environ)
    assert json.loads(body)["extensions"] == ["http.response.pathsend"]


def test_asgi2_app_is_accepted(make: Make) -> None:
    recorder, body = get(make(Asgi2App), "/two")
    assert (recorder.code, body) == (200, b"asgi2 /two")


# -- request body -----------------------------------------------------------------


def test_body_is_streamed_in_bounded_chunks(make: Make) -> None:
    sizes: list[int] = []

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        total = b""
        while True:
            message = await receive()
            sizes.append(len(message["body"]))
            total += message["body"]
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": total})

    data = bytes(range(256)) * 1000
    _, body = call(make(app, chunk_size=4096), environ_for("/", method="POST", data=data))
    assert body == data
    assert max(sizes) == 4096
    assert sum(sizes) == len(data)


@pytest.mark.parametrize(
    ("terminated", "expected"),
    [
        pytest.param(True, b"chunked body", id="input-terminated-reads-to-eof"),
        pytest.param(False, b"", id="no-length-no-termination-is-empty"),
    ],
)
def test_body_without_content_length(make: Make, terminated: bool, expected: bytes) -> None:
    environ = environ_for("/", method="POST")
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(b"chunked body")
    environ["wsgi.input_terminated"] = terminated
    _, body = call(make(echo), environ)
    assert body == expected


def test_chunked_body_the_server_does_not_end_is_411_not_lost(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """wsgiref gives a chunked upload as the raw socket, with neither CONTENT_LENGTH nor
    ``wsgi.input_terminated``: the body cannot be read, so it is refused (as mod_wsgi
    refuses it), not handed to the app as empty."""
    environ = environ_for("/", method="POST")
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = io.BytesIO(b"5\r\nhello\r\n0\r\n\r\n")
    with caplog.at_level(logging.WARNING, logger="bridge.asgi_to_wsgi"):
        recorder, body = call(make(echo), environ)
    assert recorder.code == 411
    assert b"chunked" in body
    [record] = caplog.records
    assert "411" in record.getMessage()
    environ["wsgi.input_terminated"] = True  # gunicorn, werkzeug: de-chunked, read to EOF
    environ["wsgi.input"] = io.BytesIO(b"hello")
    assert call(make(echo), environ)[1] == b"hello"


def test_large_streamed_body_without_content_length(make: Make) -> None:
    data = b"x" * 300_000
    environ = environ_for("/", method="POST")
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(data)
    environ["wsgi.input_terminated"] = True
    _, body = call(make(echo, chunk_size=1024), environ)
    assert body == data


def test_receive_after_body_waits_for_the_response_then_disconnects(make: Make) -> None:
    seen: list[str] = []
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await read_body(receive)
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                seen.append((await receive())["type"])

            tg.start_soon(listen)
            await anyio.lowlevel.checkpoint()
            seen.append("responding")
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
            await send({"type": "http.response.body", "body": b"ok"})
        seen.append((await receive())["type"])
        done.set()

    adapter = make(app)
    _, body = get(adapter, method="POST", data=b"abc")
    assert body == b"ok"
    assert done.wait(10)
    assert seen == ["responding", "http.disconnect", "http.disconnect"], seen


def test_cancelled_receive_loses_no_chunk(make: Make) -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        with anyio.CancelScope() as cancelled:  # like Starlette's Request.is_disconnected()
            cancelled.cancel()
            await receive()
        await respond_with(send, await read_body(receive))

    data = b"y" * 10_000
    # prefetch_size=1: the body is streamed, so the first receive() must wait for the thread.
    adapter = make(app, chunk_size=1000, prefetch_size=1)
    _, body = call(adapter, environ_for("/", method="POST", data=data))
    assert body == data


async def respond_with(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": body})


# -- response streaming ---------------------------------------------------------------


def test_first_chunk_arrives_before_the_app_finishes(make: Make) -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await wait_for(release)
        await send({"type": "http.response.body", "body": b"second"})

    recorder, result = start(make(app), environ_for("/"))
    iterator = iter(result)
    try:
        assert recorder.code == 200
        assert next(iterator) == b"first"
        release.set()
        assert list(iterator) == [b"second"]
    finally:
        close(result)


def test_backpressure_bounds_what_is_queued(make: Make) -> None:
    chunk = b"z" * 1000
    consumed = 0
    ahead: list[int] = []

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for sent in range(1, 201):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            ahead.append(sent - consumed)
        await send({"type": "http.response.body", "body": b""})

    _, result = start(make(app, buffer_size=8000), environ_for("/"))
    try:
        for _ in result:
            consumed += 1
    finally:
        close(result)
    assert consumed == 200
    # buffer_size / chunk, plus the chunk in flight on each side
    assert max(ahead) <= 8000 // 1000 + 2


def test_pathsend_uses_the_file_wrapper(make: Make, tmp_path: Path) -> None:
    target = tmp_path / "payload.bin"
    target.write_bytes(b"file-bytes" * 1000)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.pathsend", "path": str(target)})

    environ = environ_for("/")
    environ["wsgi.file_wrapper"] = FileWrapper
    recorder, body = call(make(app), environ)
    assert (recorder.code, body) == (200, target.read_bytes())


def test_early_close_disconnects_then_cancels(make: Make) -> None:
    outcome: list[str] = []
    finished = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await read_body(receive)
        try:
            outcome.append((await receive())["type"])
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        finally:
            finished.set()

    _, result = start(make(app, disconnect_grace=0.01), environ_for("/"))
    assert next(iter(result)) == b"one"
    close(result)
    assert finished.wait(10)
    assert outcome == ["http.disconnect", "cancelled"]


def test_send_after_early_close_raises_client_disconnected(make: Make) -> None:
    raised: list[BaseException] = []
    finished = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                await anyio.sleep(0.001)
        except OSError as exc:
            raised.append(exc)
        finally:
            finished.set()

    _, result = start(make(app), environ_for("/"))
    assert next(iter(result)) == b"tick"
    close(result)
    assert finished.wait(10)
    assert isinstance(raised[0], ClientDisconnected)


def test_background_work_continues_after_the_response(make: Make) -> None:
    release, finished = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await respond_with(send, b"done")
        await wait_for(release)
        finished.set()

    recorder, body = get(make(app))
    assert (recorder.code, body, finished.is_set()) == (200, b"done", False)
    release.set()
    assert finished.wait(10)


def test_close_waits_for_background_work(make: Make) -> None:
    finished = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await respond_with(send, b"done")
        await anyio.sleep(0.05)
        finished.set()

    adapter = make(app)
    get(adapter)
    adapter.close()
    assert finished.is_set()


def test_hop_by_hop_response_headers_are_dropped(make: Make) -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        headers = [
            *TEXT,
            (b"connection", b"close"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    recorder, _ = get(make(app))
    assert recorder.status == "201 Created"
    assert recorder.headers == [
        ("content-type", "text/plain"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]


# -- errors -------------------------------------------------------------------------


def _raise_before_start(scope: dict[str, Any]) -> None:
    raise ValueError("boom before start")


async def fails_before_start(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    _raise_before_start(scope)


async def fails_between_start_and_body(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    raise ValueError("boom after start")


async def never_responds(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await anyio.sleep_forever()


async def returns_silently(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    return None


@pytest.mark.parametrize(
    ("app", "status", "logged"),
    [
        pytest.param(fails_before_start, 500, "raised before", id="raises-before-start"),
        pytest.param(fails_between_start_and_body, 500, "raised before", id="raises-after-start"),
        pytest.param(returns_silently, 500, "without sending", id="no-response"),
        pytest.param(never_responds, 504, "no response within", id="never-responds"),
    ],
)
def test_app_failures_before_the_body(
    make: Make, caplog: pytest.LogCaptureFixture, app: App, status: int, logged: str
) -> None:
    recorder, body = get(make(app, response_timeout=0.2))
    assert recorder.code == status
    assert recorder.header("content-type") == "text/plain; charset=utf-8"
    assert body == {500: b"Internal Server Error\n", 504: b"Gateway Timeout\n"}[status]
    (line,) = errors(caplog)
    assert logged in line
    assert (recorder.exc_info is not None) == (status == 500 and app is not returns_silently)


def test_never_responding_app_is_cancelled(make: Make) -> None:
    cancelled = threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    recorder, _ = get(make(app, response_timeout=0.05))
    assert recorder.code == 504
    assert cancelled.wait(10)


def test_error_after_the_body_started_propagates(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise KeyError("boom mid-stream")

    _, result = start(make(app), environ_for("/"))
    iterator = iter(result)
    assert next(iterator) == b"partial"
    with pytest.raises(KeyError, match="boom mid-stream"):
        next(iterator)
    close(result)
    (line,) = errors(caplog)
    assert "after its response started" in line


async def body_before_start(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def two_starts(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})


async def unknown_message(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.trailers", "headers": []})


async def bad_status(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": "200", "headers": TEXT})


async def str_header(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [("a", "b")]})


async def header_injection(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]})


async def str_body(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": "text"})


async def pathsend_without_wrapper(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.pathsend", "path": "/etc/hostname"})


@pytest.mark.parametrize(
    ("app", "cause"),
    [
        pytest.param(body_before_start, "before http.response.start", id="body-before-start"),
        pytest.param(two_starts, "sent twice", id="two-starts"),
        pytest.param(unknown_message, "unexpected ASGI message", id="unknown-message"),
        pytest.param(bad_status, "invalid status", id="status-not-int"),
        pytest.param(str_header, "must be bytes", id="header-not-bytes"),
        pytest.param(header_injection, "contains CR, LF or NUL", id="header-crlf"),
        pytest.param(str_body, "must be bytes", id="body-not-bytes"),
        pytest.param(pathsend_without_wrapper, "unexpected ASGI message", id="pathsend-no-wrapper"),
    ],
)
def test_protocol_violations_answer_500_with_one_line(
    make: Make, caplog: pytest.LogCaptureFixture, app: App, cause: str
) -> None:
    recorder, _ = get(make(app))
    assert recorder.code == 500
    (line,) = errors(caplog)
    assert cause in line


def test_body_after_the_last_is_logged(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await respond_with(send, b"done")
        await send({"type": "http.response.body", "body": b"more"})

    adapter = make(app)
    recorder, body = get(adapter)
    adapter.close()  # waits for the app to finish
    assert (recorder.code, body) == (200, b"done")
    (line,) = errors(caplog)
    assert "after the response was complete" in line


# -- bad input --------------------------------------------------------------------


def test_non_utf8_path_is_400(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    environ = environ_for("/")
    environ["PATH_INFO"] = "/\xff\xfe"
    recorder, _ = call(make(hello), environ)
    assert recorder.code == 400
    (line,) = refusals(caplog)
    assert "PATH_INFO is not valid UTF-8" in line


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "12 34"])
def test_invalid_content_length_is_400(
    make: Make, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    environ = environ_for("/", method="POST", data=b"abc")
    environ["CONTENT_LENGTH"] = value
    recorder, _ = call_unvalidated(make(echo), environ)  # validator asserts on this environ
    assert recorder.code == 400
    (line,) = refusals(caplog)
    assert "Content-Length" in line


@pytest.mark.parametrize("declared", [100, 1_000_000], ids=["prefetched", "streamed"])
def test_short_input_is_400(make: Make, caplog: pytest.LogCaptureFixture, declared: int) -> None:
    environ = environ_for("/", method="POST")
    environ["CONTENT_LENGTH"] = str(declared)
    environ["wsgi.input"] = io.BytesIO(b"only this")
    recorder, _ = call(make(echo), environ)
    assert recorder.code == 400
    (line,) = refusals(caplog)
    assert "ended" in line
    assert "early" in line


@pytest.mark.parametrize("declared", [100, 1_000_000], ids=["prefetched", "streamed"])
def test_failing_input_is_400(make: Make, caplog: pytest.LogCaptureFixture, declared: int) -> None:
    environ = environ_for("/", method="POST")
    environ["CONTENT_LENGTH"] = str(declared)
    environ["wsgi.input"] = BrokenInput()
    recorder, _ = call(make(echo), environ)
    assert recorder.code == 400
    (line,) = refusals(caplog)
    assert "ConnectionResetError" in line


def test_many_threads_at_once(make: Make) -> None:
    adapter = make(echo)
    failures: list[str] = []

    def worker(number: int) -> None:
        for request in range(40):
            payload = f"{number}-{request}".encode() * (1 + request * 50)
            recorder, body = get(adapter, method="POST", data=payload)
            if recorder.code != 200 or body != payload:
                failures.append(f"{number}-{request}: {recorder.status}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"lifespan": "yes"}, ValueError, "'auto', 'on' or 'off'", id="lifespan"),
        pytest.param({"backend": "curio"}, ValueError, "must be one of", id="backend"),
        pytest.param({"chunk_size": 0}, ValueError, "positive", id="chunk-size-zero"),
        pytest.param({"chunk_size": 1.5}, TypeError, "an int", id="chunk-size-float"),
        pytest.param({"buffer_size": -1}, ValueError, "positive", id="buffer-size"),
        pytest.param({"response_timeout": 0}, ValueError, "positive", id="response-timeout"),
        pytest.param({"disconnect_grace": "1"}, TypeError, "seconds", id="grace-str"),
        pytest.param({"startup_timeout": float("inf")}, ValueError, "finite", id="startup-timeout"),
    ],
)
def test_misconfiguration_raises_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AsgiToWsgi(hello, **options)


def test_not_an_app_raises() -> None:
    with pytest.raises(TypeError, match="needs an ASGI application"):
        AsgiToWsgi("app:main")


def test_uvloop_backend() -> None:
    with AsgiToWsgi(hello, backend="asyncio+uvloop") as adapter:
        recorder, body = get(adapter)
    assert (recorder.code, body) == (200, b"Hello, world!")


@pytest.mark.parametrize("streamed", [False, True], ids=["one-message", "streamed"])
def test_head_response_body_never_reaches_the_server(make: Make, streamed: bool) -> None:
    """A HEAD answer keeps its head (Content-Length included) and sends no body bytes,
    which a keep-alive server such as waitress would otherwise write onto the connection."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"10")],
            }
        )
        parts = [b"01234", b"56789"] if streamed else [b"0123456789"]
        for index, part in enumerate(parts):
            more = index < len(parts) - 1
            await send({"type": "http.response.body", "body": part, "more_body": more})

    recorder, body = get(make(app), method="HEAD")
    assert recorder.status == "200 OK"
    assert ("content-length", "10") in recorder.headers
    assert body == b""
