"""RateLimit and ConcurrencyLimit through the drivers: release paths, logs, configuration."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import anyio
import pytest

from bridge import ConcurrencyLimit, MemoryStore, RateLimit
from bridge._http.types import Environ, StartResponse
from bridge.ratelimit import Rule
from bridge.testing import FakeClock, InnerApp, Request, acall_asgi, call_asgi, call_wsgi

CONN_KEY = "conn|conn|1|127.0.0.1"


def slots(store: MemoryStore) -> int:
    return store.in_flight(CONN_KEY)


# -- ConcurrencyLimit: the slot comes back on every path -----------------------------


@pytest.mark.anyio
async def test_asgi_second_request_rejected_while_first_runs() -> None:
    gate, entered = anyio.Event(), anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()  # the app runs only once the slot is held
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    store = MemoryStore()
    mw = ConcurrencyLimit(app, 1, store=store, retry_after=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(acall_asgi, mw, Request())
        await entered.wait()
        rejected = await acall_asgi(mw, Request())
        assert rejected.status == 503
        assert rejected.header(b"retry-after") == b"2"
        gate.set()
    assert slots(store) == 0
    assert (await acall_asgi(mw, Request())).status == 200


@pytest.mark.anyio
async def test_asgi_slot_released_on_cancellation_and_app_error() -> None:
    entered = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        entered.set()
        await anyio.sleep_forever()

    store = MemoryStore()
    mw = ConcurrencyLimit(app, 1, store=store)
    with anyio.move_on_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(acall_asgi, mw, Request())
            await entered.wait()
            assert slots(store) == 1
            tg.cancel_scope.cancel()  # what a server does when the client goes away
    assert slots(store) == 0
    assert (await acall_asgi(mw, Request(path="/boom"))).status == 500
    assert slots(store) == 0


@pytest.mark.anyio
async def test_asgi_slot_released_when_client_disconnects() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        raise OSError("client went away")  # like a server's send after a disconnect

    store = MemoryStore()
    mw = ConcurrencyLimit(app, 1, store=store)
    await acall_asgi(mw, Request(body=[b"a", b"b"], disconnect_after=1))
    assert slots(store) == 0


def test_wsgi_threads_and_every_release_path() -> None:
    gate, entered = threading.Event(), threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            gate.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"one", b"two"]

    store = MemoryStore()
    mw = ConcurrencyLimit(app, 1, store=store)
    worker = threading.Thread(target=call_wsgi, args=(mw, Request(path="/slow")))
    worker.start()
    try:
        assert entered.wait(30)
        assert call_wsgi(mw, Request()).status == 503
    finally:
        gate.set()
        worker.join(30)
    assert slots(store) == 0
    assert call_wsgi(mw, Request(path="/boom")).status == 500
    assert slots(store) == 0
    # A server that stops iterating (the client went away) and closes the iterable.
    environ: Environ = {"REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    iterable = validator(mw)(environ, lambda status, headers, exc_info=None: lambda data: None)
    iterator = iter(iterable)
    next(iterator)
    assert slots(store) == 1
    iterable.close()  # type: ignore[attr-defined]
    assert slots(store) == 0


# -- RateLimit: logs and configuration ------------------------------------------------


def test_missing_client_address_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().wsgi(), "1/minute")
    for _ in range(3):
        assert call_wsgi(mw, Request(client=None)).status == 200
    (record,) = caplog.records
    assert "no client address" in record.getMessage()


def test_dry_run_logs_would_be_rejections(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().asgi(), "1/minute", dry_run=True, clock=FakeClock())
    assert [call_asgi(mw, Request()).status for _ in range(2)] == [200, 200]
    (record,) = caplog.records
    assert "would reject GET /" in record.getMessage()


def test_rejection_logged_at_the_chosen_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().wsgi(), "1/minute", log_level=logging.INFO, clock=FakeClock())
    assert [call_wsgi(mw, Request()).status for _ in range(2)] == [200, 429]
    (record,) = caplog.records
    assert record.levelno == logging.INFO


def test_cost_function_returning_garbage_is_a_500() -> None:
    mw = RateLimit(InnerApp().wsgi(), "5/minute", cost=lambda head: -1)
    assert call_wsgi(mw, Request()).status == 500


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"limit": "10/fortnight"}, ValueError, "unknown time unit", id="unit"),
        pytest.param({"limit": "ten a minute"}, ValueError, "malformed rate", id="malformed"),
        pytest.param({"algorithm": "leaky"}, ValueError, "algorithm must be", id="algorithm"),
        pytest.param(
            {"limit": "1/second burst 5", "algorithm": "fixed_window"},
            ValueError,
            "needs algorithm='gcra'",
            id="burst-without-gcra",
        ),
        pytest.param(
            {"error_format": "problem"}, ValueError, "error_format must be", id="error-format"
        ),
        pytest.param({"body": "html"}, ValueError, "body must be", id="deprecated-body"),
        pytest.param({"status": 200}, ValueError, "status", id="status"),
        pytest.param({"store": object()}, TypeError, "store must implement", id="store"),
        pytest.param({"cost": -1}, ValueError, "cost must be", id="cost"),
        pytest.param({"key": "x-api-key"}, ValueError, "key must be a function", id="key"),
        pytest.param({"limit": None}, ValueError, "nothing to limit", id="nothing"),
        pytest.param(
            {"rules": [Rule("1/second", path="api")]}, ValueError, "must start with '/'", id="path"
        ),
        pytest.param(
            {"rules": [Rule("1/second", name="a b")]}, ValueError, "rule name", id="rule-name"
        ),
    ],
)
def test_ratelimit_misconfiguration(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RateLimit(InnerApp().wsgi(), **{"limit": "1/minute", **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"limit": 0}, "positive int", id="zero"),
        pytest.param({"limit": 2, "status": 302}, "status", id="status"),
        pytest.param({"limit": 2, "retry_after": -1}, "retry_after", id="retry-after"),
        pytest.param({"limit": 2, "error_format": "html"}, "error_format", id="error-format"),
    ],
)
def test_concurrency_misconfiguration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConcurrencyLimit(InnerApp().wsgi(), **options)


@pytest.mark.parametrize(
    ("body", "error_format", "content_type"),
    [
        pytest.param("problem", "problem+json", b"application/problem+json", id="problem"),
        pytest.param("text", "text", b"text/plain; charset=utf-8", id="text"),
    ],
)
def test_deprecated_body_option_still_works_and_names_error_format(
    body: str, error_format: str, content_type: bytes
) -> None:
    with pytest.warns(DeprecationWarning, match=f"use error_format='{re.escape(error_format)}'"):
        app = RateLimit(InnerApp().wsgi(), "1/minute", body=body)
    assert app.error_format == error_format
    rejected = [call_wsgi(app) for _ in range(2)][1]
    assert (rejected.status, rejected.header(b"content-type")) == (429, content_type)


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_error_format_renders_every_rejection(interface: str) -> None:
    inner = InnerApp()
    limited = RateLimit(getattr(inner, interface)(), "1/minute", error_format="problem+json")
    concurrency = ConcurrencyLimit(getattr(inner, interface)(), 1, error_format="problem+json")
    call = call_wsgi if interface == "wsgi" else call_asgi
    rejected = [call(limited) for _ in range(2)][1]
    assert json.loads(rejected.body) == {
        "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
        "title": "Request cannot be satisfied as assigned quota has been exceeded",
        "status": 429,
        "detail": "retry in 60 seconds.",
        "violated-policies": ["1/minute"],
    }
    assert concurrency.rejection.body == (
        b'{"type":"about:blank","title":"Service Unavailable","status":503}'
    )


# -- real frameworks ------------------------------------------------------------------


def test_flask_wsgi_app() -> None:
    import flask

    app = flask.Flask(__name__)

    @app.get("/")
    def index() -> str:
        return "hi"

    app.wsgi_app = RateLimit(app.wsgi_app, "2/minute")  # type: ignore[method-assign]
    client = app.test_client()
    responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["RateLimit"] == '"2/minute";r=1;t=30'
    assert responses[2].headers["Retry-After"] == "30"


@pytest.mark.anyio
async def test_starlette_add_middleware() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/", index)])
    app.add_middleware(RateLimit, limit="2/minute", error_format="problem+json")
    responses = [await acall_asgi(app, Request()) for _ in range(3)]
    assert [r.status for r in responses] == [200, 200, 429]
    assert responses[2].header(b"content-type") == b"application/problem+json"
    assert json.loads(responses[2].body)["status"] == 429
