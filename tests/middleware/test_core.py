"""The core's public behaviour: interface detection, hooks, outcomes, effects, errors."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import anyio
import pytest
from asgiref.compatibility import guarantee_single_callable
from hypercorn.utils import is_asgi

from bridge._http.translate import environ_from_scope
from bridge._http.types import Environ, StartResponse
from bridge.middleware import (
    Call,
    Effect,
    Exchange,
    Forward,
    Middleware,
    Outcome,
    RequestHead,
    Respond,
    Response,
    ResponseHead,
    detect_interface,
    set_header,
    stack,
)
from bridge.testing import InnerApp, Request, acall_asgi, call_asgi, call_wsgi

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Recorder(Middleware):
    """Records every outcome given to finish(); optionally responds or breaks."""

    def __init__(self, app: Any, *, respond: bool = False, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.outcomes: list[Outcome] = []
        self.respond = respond

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _Recording(head, now, self)


class _Recording(Exchange):
    __slots__ = ("mw",)

    def __init__(self, head: RequestHead, now: float, mw: Recorder) -> None:
        super().__init__(head, now)
        self.mw = mw

    def request(self) -> Forward | Respond:
        if self.mw.respond:
            return Respond(Response.text(403))
        return Forward(self.head)

    def finish(self, outcome: Outcome) -> None:
        self.mw.outcomes.append(outcome)


def wsgi_hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


async def asgi_hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


# -- interface detection ---------------------------------------------------------


def test_wsgi_in_wsgi_out_and_asgi_in_asgi_out() -> None:
    from uvicorn._compat import iscoroutinefunction

    wsgi = Recorder(wsgi_hello)
    asgi = Recorder(asgi_hello)
    assert wsgi.interface == "wsgi"
    assert asgi.interface == "asgi"
    assert isinstance(wsgi, Recorder)
    assert isinstance(asgi, Recorder)
    # what uvicorn and hypercorn look at
    assert iscoroutinefunction(asgi.__call__)
    assert not iscoroutinefunction(wsgi.__call__)
    assert is_asgi(asgi)
    assert not is_asgi(wsgi)
    assert guarantee_single_callable(asgi) is asgi  # type: ignore[no-untyped-call]
    # nesting keeps the interface
    assert Recorder(asgi).interface == "asgi"
    assert Recorder(wsgi).interface == "wsgi"


def test_detection_of_framework_apps() -> None:
    import flask
    import starlette.applications
    from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]

    assert detect_interface(flask.Flask("x")) == "wsgi"
    assert detect_interface(flask.Flask("x").wsgi_app) == "wsgi"
    assert detect_interface(starlette.applications.Starlette()) == "asgi"
    assert detect_interface(ASGIHandler.__call__) == "asgi"
    assert detect_interface(WSGIHandler.__call__) == "wsgi"


def test_explicit_interface_override_and_bad_apps() -> None:
    forced = Recorder(lambda *args: None, interface="asgi")
    assert forced.interface == "asgi"
    with pytest.raises(ValueError, match="interface must be"):
        Recorder(wsgi_hello, interface="rsgi")
    with pytest.raises(TypeError, match="is a class"):
        Recorder(InnerApp)
    with pytest.raises(TypeError, match="not callable"):
        Recorder(42)
    with pytest.raises(TypeError, match="clock"):
        Recorder(wsgi_hello, clock=3)


def test_keyword_app_like_older_starlette() -> None:
    middleware = Recorder(app=asgi_hello)
    assert middleware.interface == "asgi"


def test_stack_orders_outer_first() -> None:
    order: list[str] = []

    def layer(name: str) -> Any:
        def wrap(app: Any) -> Any:
            order.append(name)
            return app

        return wrap

    stack(wsgi_hello, layer("outer"), layer("inner"))
    assert order == ["inner", "outer"]
    app = stack(wsgi_hello, (Recorder, {"respond": True}), Recorder)
    assert call_wsgi(app).status == 403


# -- finish outcomes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "respond", "kind", "status"),
    [
        pytest.param(InnerApp(), False, "completed", 200, id="completed"),
        pytest.param(InnerApp(), True, "responded", 403, id="responded"),
        pytest.param(InnerApp(fail="before_start"), False, "app_error", 500, id="app-error"),
        pytest.param(InnerApp(fail="after_start"), False, "app_error", 500, id="after-start"),
        pytest.param(
            InnerApp(body=[b"a", b"b"], fail="after_body"), False, "app_error", 200, id="mid-body"
        ),
    ],
)
def test_finish_runs_once_with_the_outcome(
    inner: InnerApp, respond: bool, kind: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    wsgi = Recorder(inner.wsgi(), respond=respond)
    asgi = Recorder(inner.asgi(), respond=respond)
    call_wsgi(wsgi, Request())
    call_asgi(asgi, Request())
    for middleware in (wsgi, asgi):
        assert [(o.kind, o.status) for o in middleware.outcomes] == [(kind, status)]


def test_finish_on_wsgi_close_before_the_end_is_disconnected() -> None:
    middleware = Recorder(InnerApp(body=[b"a", b"b"]).wsgi())
    environ = environ_from_scope(Request().scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert next(iter(body)) == b"a"
    body.close()
    body.close()
    assert [o.kind for o in middleware.outcomes] == ["disconnected"]


@pytest.mark.anyio
async def test_finish_on_asgi_cancellation_is_cancelled() -> None:
    started = anyio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    middleware = Recorder(slow)
    async with anyio.create_task_group() as group:
        group.start_soon(acall_asgi, middleware, Request())
        await started.wait()
        group.cancel_scope.cancel()
    assert [o.kind for o in middleware.outcomes] == ["cancelled"]


# -- effects -------------------------------------------------------------------------


class Counter(Middleware):
    """Asks a 'store' through a Call effect; a failing effect is thrown back in."""

    def __init__(self, app: Any, *, fail: bool = False, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.fail = fail
        self.calls: list[str] = []

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _Counting(head, now, self)

    def incr(self, how: str) -> int:
        self.calls.append(how)
        if self.fail:
            raise ConnectionError("store is down")
        return len(self.calls)


class _Counting(Exchange):
    __slots__ = ("mw",)

    def __init__(self, head: RequestHead, now: float, mw: Counter) -> None:
        super().__init__(head, now)
        self.mw = mw

    def request(self) -> Generator[Effect[Any], Any, Forward | Respond]:
        mw = self.mw

        async def incr_async() -> int:
            return mw.incr("async")

        try:
            count = yield Call(lambda: mw.incr("sync"), incr_async)
        except ConnectionError:
            return Respond(Response.problem(503, "store is down"))
        return Forward(self.head.with_value("bridge.count", count))

    def response(self, head: ResponseHead) -> ResponseHead:
        return head.replace(headers=set_header(head.headers, b"x-count", b"1"))


def test_call_effect_runs_sync_under_wsgi_and_async_under_asgi() -> None:
    wsgi = Counter(InnerApp().wsgi())
    asgi = Counter(InnerApp().asgi())
    for result in (call_wsgi(wsgi), call_asgi(asgi, backend="trio")):
        assert result.status == 200
        assert result.seen is not None
        assert result.seen.head.values["bridge.count"] == 1
    assert wsgi.calls == ["sync"]
    assert asgi.calls == ["async"]


def test_effect_errors_are_thrown_into_the_generator() -> None:
    wsgi = call_wsgi(Counter(InnerApp().wsgi(), fail=True))
    asgi = call_asgi(Counter(InnerApp().asgi(), fail=True))
    assert wsgi == asgi
    assert wsgi.status == 503


# -- drivers -------------------------------------------------------------------------


def test_request_is_not_mutated_and_a_bad_path_gets_400_whatever_the_middleware_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Https(Middleware):
        def exchange(self, head: RequestHead, now: float) -> Exchange:
            return _Https(head, now)

    class ByPath(Middleware):
        def exchange(self, head: RequestHead, now: float) -> Exchange:
            return _ByPath(head, now)

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/\xff",  # not UTF-8
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    called: list[Any] = []

    def recording(environ: Any, start_response: Any) -> Any:
        called.append(environ)
        return wsgi_hello(environ, start_response)

    # The head is built whole before any middleware runs: the one that reads the path
    # and the one that never does answer alike, with one log line each.
    for kind in (ByPath, Https):
        caplog.clear()
        statuses: list[str] = []
        body = kind(recording)(
            dict(environ), lambda status, headers, exc_info=None, s=statuses: s.append(status)
        )
        assert statuses == ["400 Bad Request"]
        assert b"PATH_INFO is not valid UTF-8" in b"".join(body)
        assert [r.name for r in caplog.records] == ["bridge.middleware"]
    assert called == []
    environ["PATH_INFO"] = "/ok"
    before = dict(environ)
    result = Https(wsgi_hello)(environ, lambda *args: None)
    assert list(result) == [b"hello"]
    assert environ == before


class _ByPath(Exchange):
    def request(self) -> Forward:
        return Forward(self.head.replace(path=self.head.path + "/x"))


class _Https(Exchange):
    def request(self) -> Forward:
        return Forward(self.head.replace(scheme="https"))


def test_asgi_app_that_returns_without_response_gets_500(caplog: pytest.LogCaptureFixture) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    result = call_asgi(Recorder(silent), Request())
    assert result.status == 500
    assert any("without a response" in r.getMessage() for r in caplog.records)


def test_legacy_wsgi_write_callable() -> None:
    def legacy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        yield b"yielded"

    assert call_wsgi(Recorder(legacy)).body == b"written yielded"


def test_scope_is_copied_before_change() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await asgi_hello(scope, receive, send)

    class Https(Middleware):
        def exchange(self, head: RequestHead, now: float) -> Exchange:
            return _Https(head, now)

    scope = Request().scope()
    original = dict(scope)

    async def main() -> None:
        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        await Https(app)(scope, receive, send)

    anyio.run(main)
    assert dict(scope) == original
    assert seen[0]["scheme"] == "https"


class ReadsHeaders(Middleware):
    def exchange(self, head: RequestHead, now: float) -> Exchange:
        head.headers  # noqa: B018 - reading them is the point
        return Exchange(head, now)


def test_untranslatable_headers_found_late_are_400_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scope = Request().scope()
    scope["headers"] = [(b"host", b"h"), (b"content-length", b"12abc")]

    async def main() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append(message)

        await ReadsHeaders(asgi_hello)(scope, receive, send)
        return sent

    sent = anyio.run(main)
    assert sent[0]["status"] == 400
    environ = environ_from_scope(Request().scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    environ["HTTP_X_SNOWMAN"] = "\u2603"  # not latin-1: no server sends this
    statuses: list[str] = []
    ReadsHeaders(wsgi_hello)(
        environ, lambda status, headers, exc_info=None: statuses.append(status)
    )
    assert statuses == ["400 Bad Request"]
    records = [r for r in caplog.records if r.name == "bridge.middleware"]
    assert [r.levelname for r in records] == ["WARNING", "WARNING"]


def test_asgi_app_that_returns_after_start_without_body_gets_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    result = call_asgi(Recorder(half), Request())
    assert result.status == 500
    assert any("without its response body" in r.getMessage() for r in caplog.records)


# -- websocket finish -----------------------------------------------------------------


class WebsocketRecorder(Recorder):
    scope_types = frozenset({"http", "websocket"})


def _ws_scope() -> dict[str, Any]:
    scope: dict[str, Any] = dict(Request(path="/ws").scope())
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    scope.pop("method", None)
    return scope


async def _ws_receive() -> Any:
    return {"type": "websocket.connect"}


async def _ws_send(message: Any) -> None:
    pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(None, "completed", id="completed"),
        pytest.param(RuntimeError("boom"), "app_error", id="app-error"),
        pytest.param(ConnectionResetError("gone"), "disconnected", id="disconnected"),
    ],
)
async def test_websocket_finish_runs_once_on_every_path(error: Exception | None, kind: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if error is not None:
            raise error
        await send({"type": "websocket.close", "code": 1000})

    middleware = WebsocketRecorder(app)
    if error is None:
        await middleware(_ws_scope(), _ws_receive, _ws_send)
    else:
        with pytest.raises(type(error)):
            await middleware(_ws_scope(), _ws_receive, _ws_send)
    assert [o.kind for o in middleware.outcomes] == [kind]
    assert (middleware.outcomes[0].error is error) or error is None


@pytest.mark.anyio
async def test_websocket_finish_runs_once_when_refused_or_cancelled() -> None:
    refusing = WebsocketRecorder(asgi_hello, respond=True)
    await refusing(_ws_scope(), _ws_receive, _ws_send)
    assert [o.kind for o in refusing.outcomes] == ["responded"]

    started = anyio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    waiting = WebsocketRecorder(slow)
    async with anyio.create_task_group() as group:
        group.start_soon(waiting, _ws_scope(), _ws_receive, _ws_send)
        await started.wait()
        group.cancel_scope.cancel()
    assert [o.kind for o in waiting.outcomes] == ["cancelled"]


@pytest.mark.parametrize("in_body", [False, True], ids=["response", "response-body"])
def test_malformed_head_found_by_a_response_hook_is_400_with_one_line(
    in_body: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.middleware.conformance.cases_core import LateHeaders, malformed_length

    for inner in (InnerApp().wsgi(), InnerApp().asgi()):
        caplog.clear()
        app = malformed_length(inner, lambda a: LateHeaders(a, in_body=in_body))
        result = call_wsgi(app) if detect_interface(app) == "wsgi" else call_asgi(app)
        assert result.status == 400
        records = [r for r in caplog.records if r.name.startswith("bridge")]
        assert [(r.name, r.levelname) for r in records] == [("bridge.middleware", "WARNING")]


class Upper(Middleware):
    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _Upper(head, now)


class _Upper(Exchange):
    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        return (chunk.upper(),)


def test_legacy_wsgi_write_goes_through_response_body_before_and_after_the_head() -> None:
    def legacy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"before ")
        yield b"first "
        write(b"after ")  # the head has been sent by now
        yield b"last"

    assert call_wsgi(Upper(legacy)).body == b"BEFORE FIRST AFTER LAST"


class HookOrder(Middleware):
    def __init__(self, app: Any, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.calls: list[str] = []

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _HookOrder(head, now, self.calls)


class _HookOrder(Exchange):
    __slots__ = ("calls",)

    def __init__(self, head: RequestHead, now: float, calls: list[str]) -> None:
        super().__init__(head, now)
        self.calls = calls

    def response_start(self, head: ResponseHead) -> None:
        self.calls.append(f"start {head.status} {head.header(b'content-type')!r}")

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        self.calls.append(f"body {chunk!r} {more}")
        return () if more else (b"held",)  # hold everything, emit one chunk at the end

    def response(self, head: ResponseHead) -> ResponseHead:
        self.calls.append("response")
        return head


def test_response_start_comes_first_and_the_tail_is_sent_at_the_end() -> None:
    inner = InnerApp(body=[b"a", b"b"])
    wsgi, asgi = HookOrder(inner.wsgi()), HookOrder(inner.asgi())
    assert call_wsgi(wsgi).body == call_asgi(asgi).body == b"held"
    assert wsgi.calls == asgi.calls
    assert wsgi.calls == [
        "start 200 b'text/plain; charset=utf-8'",
        "body b'a' True",
        "body b'b' True",
        "body b'' False",
        "response",
    ]


def test_wsgi_app_is_closed_before_the_tail_is_served() -> None:
    events: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"

        def close(self) -> None:
            events.append("closed")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    environ = environ_from_scope(Request().scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    body = HookOrder(app)(environ, lambda status, headers, exc_info=None: None)
    events.extend(f"served {chunk!r}" for chunk in body)
    body.close()
    assert events == ["closed", "served b'held'"]


# -- a bug in a response hook ------------------------------------------------------


class BrokenResponseHook(Middleware):
    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _BrokenResponse(head, now)


class _BrokenResponse(Exchange):
    def response(self, head: ResponseHead) -> ResponseHead:
        raise RuntimeError("hook bug")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_response_hook_bug_is_one_500_logged_alike_under_both(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bridge")
    wsgi = call_wsgi(BrokenResponseHook(wsgi_hello))
    wsgi_lines = [r.getMessage() for r in caplog.records]
    caplog.clear()
    asgi = call_asgi(BrokenResponseHook(asgi_hello), backend=backend)
    asgi_lines = [r.getMessage() for r in caplog.records]
    assert (wsgi.status, wsgi.body) == (asgi.status, asgi.body)
    assert wsgi.status == 500
    assert (
        wsgi_lines
        == asgi_lines
        == [
            "BrokenResponseHook failed GET / (client 127.0.0.1): "
            "raised on the response head; sent 500"
        ]
    )


# -- heads read on demand stay the request's -------------------------------------------


class _EchoHead(Exchange):
    """Reads nothing before the app runs; reports the head's path and scheme after it."""

    def response(self, head: ResponseHead) -> ResponseHead:
        seen = f"{self.head.path} {self.head.scheme} {self.head.header(b'x-tag')!r}"
        return head.replace(headers=(*head.headers, (b"x-head", seen.encode())))


class EchoHead(Middleware):
    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _EchoHead(head, now)


def test_an_app_changing_its_environ_or_scope_does_not_change_the_head() -> None:
    # Routers rewrite the path in place (werkzeug's DispatcherMiddleware, Starlette's Mount).
    def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["PATH_INFO"] = "/changed"
        environ["wsgi.url_scheme"] = "https"
        environ["HTTP_X_TAG"] = "changed"
        return wsgi_hello(environ, start_response)

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        scope["path"] = "/changed"
        scope["scheme"] = "https"
        scope["headers"] = [(b"x-tag", b"changed")]
        await asgi_hello(scope, receive, send)

    request = Request(path="/original", headers=[(b"host", b"t"), (b"x-tag", b"sent")])
    wsgi = call_wsgi(EchoHead(wsgi_app), request)
    asgi = call_asgi(EchoHead(asgi_app), request)
    trio = call_asgi(EchoHead(asgi_app), request, backend="trio")
    for result in (wsgi, asgi, trio):
        assert result.header(b"x-head") == b"/original http b'sent'"


class _FailureLines(Exchange):
    """A response hook that asks to see the driver's 500, and tries to change its
    framing and (with ``status``) its status, or raises (``raises``)."""

    response_on_failure = True
    status = 500
    raises = False

    def response(self, head: ResponseHead) -> ResponseHead:
        if self.raises:
            raise RuntimeError("hook bug")
        lines = ((b"content-length", b"999"), (b"content-type", b"text/html"), (b"x-seen", b"1"))
        return ResponseHead(self.status, (*head.headers, *lines))


@pytest.mark.parametrize("call", [call_wsgi, call_asgi], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("fail", ["before_start", "after_start", "no_response"])
def test_response_on_failure_adds_lines_but_keeps_the_500s_framing(
    call: Any, fail: str, caplog: pytest.LogCaptureFixture
) -> None:
    def build(exchange: type[Exchange]) -> Any:
        class Lines(Middleware):
            def exchange(self, head: RequestHead, now: float) -> Exchange:
                return exchange(head, now)

        inner = InnerApp(fail=None if fail == "no_response" else fail)
        app = inner.wsgi() if call is call_wsgi else inner.asgi()
        if fail == "no_response":  # returns without starting a response
            app = _silent_wsgi if call is call_wsgi else _silent_asgi
        return Lines(app)

    plain = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"22")]
    result = call(build(_FailureLines), Request())
    assert (result.status, result.body) == (500, b"Internal Server Error\n")
    assert [(k.lower(), v) for k, v in result.headers] == [*plain, (b"x-seen", b"1")]

    class Moves(_FailureLines):
        status = 503

    class Raises(_FailureLines):
        raises = True

    with caplog.at_level(logging.ERROR, logger="bridge.middleware"):
        for kind in (Moves, Raises):
            result = call(build(kind), Request())
            assert (result.status, result.body) == (500, b"Internal Server Error\n")
            assert [(k.lower(), v) for k, v in result.headers] == plain
    assert any("raised in response() on the 500" in r.getMessage() for r in caplog.records)


def _silent_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return []


async def _silent_asgi(scope: Any, receive: Any, send: Any) -> None:
    return None
