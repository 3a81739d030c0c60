"""RequestId: the id in log records (WSGI thread, ASGI task), isolation, errors, Flask."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import pytest
from flask import Flask

from bridge import RequestId, RequestIdFilter, WsgiToAsgi
from bridge.middleware import current_request_id
from bridge.testing import InnerApp, Request, acall_asgi, call_asgi, call_wsgi

app_log = logging.getLogger("tests.request_id.app")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Records of ``tests.request_id.app`` formatted with ``%(request_id)s``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        app_log.removeHandler(handler)


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    app_log.info("in the app")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _body()


def _body() -> Iterator[bytes]:
    app_log.info("while streaming")
    yield b"ok"


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    app_log.info("in the app")

    async def background() -> None:
        app_log.info("in a child task")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(background)
    await anyio.to_thread.run_sync(lambda: app_log.info("in a worker thread"))
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def _ids(lines: io.StringIO) -> list[str]:
    return [line.split(" ", 1)[0] for line in lines.getvalue().splitlines()]


def test_wsgi_records_carry_the_id_in_the_apps_thread(log_lines: io.StringIO) -> None:
    app = RequestId(_wsgi_app, generator=lambda: "wsgi-1")
    result = call_wsgi(app, Request())
    assert result.header(b"x-request-id") == b"wsgi-1"
    app_log.info("after the request")
    assert _ids(log_lines) == ["wsgi-1", "wsgi-1", "-"]
    assert current_request_id() is None


def test_asgi_records_carry_the_id_in_its_task_children_and_threads(
    log_lines: io.StringIO, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    app = RequestId(_asgi_app, generator=lambda: "asgi-1")
    result = call_asgi(app, Request(), backend=anyio_backend[0])
    assert result.header(b"x-request-id") == b"asgi-1"
    assert _ids(log_lines) == ["asgi-1", "asgi-1", "asgi-1"]


def test_default_ids_are_distinct_uuid4_hex_under_both_interfaces(
    anyio_backend: tuple[str, dict[str, object]],
) -> None:
    wsgi, asgi = RequestId(_wsgi_app), RequestId(_asgi_app)
    sent = [call_wsgi(wsgi, Request()).header(b"x-request-id") for _ in range(20)]
    sent += [
        call_asgi(asgi, Request(), backend=anyio_backend[0]).header(b"x-request-id")
        for _ in range(20)
    ]
    ids = [value.decode("ascii") for value in sent if value is not None]
    assert len(set(ids)) == 40
    for rid in ids:  # what uuid.uuid4().hex gives: 32 hex digits, version 4, RFC 9562 variant
        parsed = uuid.UUID(rid)
        assert (parsed.hex, parsed.version, parsed.variant) == (rid, 4, uuid.RFC_4122)


def test_concurrent_asgi_requests_each_see_their_own_id(
    log_lines: io.StringIO, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    made = iter(f"r{n}" for n in range(20))
    app = RequestId(_asgi_app, generator=lambda: next(made))

    async def main() -> list[bytes]:
        results: list[bytes] = []

        async def one() -> None:
            results.append((await acall_asgi(app, Request())).header(b"x-request-id") or b"")

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(one)
        return results

    sent = anyio.run(main, backend=anyio_backend[0])
    assert sorted(sent) == sorted(f"r{n}".encode() for n in range(20))
    ids = _ids(log_lines)
    assert len(ids) == 60
    assert all(ids.count(f"r{n}") == 3 for n in range(20))  # never another request's id


def test_wsgi_app_under_wsgi_to_asgi_logs_the_id(
    log_lines: io.StringIO, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    app = RequestId(WsgiToAsgi(_wsgi_app), generator=lambda: "bridged")
    result = call_asgi(app, Request(), backend=anyio_backend[0])
    assert (result.status, result.body) == (200, b"ok")
    assert _ids(log_lines) == ["bridged", "bridged"]


def test_invalid_incoming_id_is_replaced_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    app = RequestId(InnerApp().wsgi(), trust_incoming=True, generator=lambda: "fresh")
    result = call_wsgi(app, Request(headers=[(b"host", b"t"), (b"x-request-id", b"x\x01" * 300)]))
    assert result.header(b"x-request-id") == b"fresh"
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.name == "bridge.middleware.request_id"
    assert record.getMessage().startswith(
        "RequestId replaced GET / (client 127.0.0.1): invalid incoming x-request-id 'x\\x01"
    )


def test_a_generator_that_returns_junk_is_a_500_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    app = RequestId(InnerApp().wsgi(), generator=lambda: "bad\r\nid")
    assert call_wsgi(app, Request()).status == 500
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert "RequestId generator returned" in str(record.exc_info[1] if record.exc_info else "")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"header": "X-Request-ID\r\n"}, ValueError, "not an HTTP token"),
        ({"header": "X Request"}, ValueError, "not an HTTP token"),
        ({"trust_incoming": "yes"}, TypeError, "trust_incoming"),
        ({"generator": "uuid4"}, TypeError, "generator"),
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RequestId(InnerApp().wsgi(), **options)


def test_flask_reads_the_id_from_its_environ() -> None:
    flask_app = Flask("request_id")

    @flask_app.get("/")
    def index() -> str:
        from flask import request

        return str(request.environ["bridge.request_id"]) + " " + request.headers["X-Request-ID"]

    flask_app.wsgi_app = RequestId(  # type: ignore[method-assign]
        flask_app.wsgi_app, generator=lambda: "flask-1"
    )
    response = flask_app.test_client().get("/", headers={"X-Request-ID": "spoofed"})
    assert response.data == b"flask-1 flask-1"
    assert response.headers["X-Request-ID"] == "flask-1"
