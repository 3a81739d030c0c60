"""Core cases: the drivers themselves, with small middleware defined here."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

from bridge import ProxyHeaders, SecurityHeaders
from bridge.middleware import (
    Abort,
    BodyTimeout,
    ClientDisconnected,
    Effect,
    Exchange,
    Forward,
    Middleware,
    ReadBody,
    ReplayBody,
    RequestHead,
    Respond,
    Response,
    ResponseHead,
    detect_interface,
    set_header,
)
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import AsgiCase, Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
HOST = (b"host", b"testserver")


class Tag(Middleware):
    """Adds ``x-tag`` to responses and ``bridge.tag`` to the request values."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _TagExchange(head, now)


class _TagExchange(Exchange):
    def request(self) -> Forward:
        return Forward(self.head.with_value("bridge.tag", "tagged"))

    def response(self, head: ResponseHead) -> ResponseHead:
        return head.replace(headers=set_header(head.headers, b"x-tag", b"1"))


class Buffer(Middleware):
    """Reads the whole body through effects, refuses more than ``limit`` bytes."""

    def __init__(self, app: Any, *, limit: int = 8, timeout: float | None = None, **kw: Any):
        super().__init__(app, **kw)
        self.limit = limit
        self.timeout = timeout

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _BufferExchange(head, now, self)


class _BufferExchange(Exchange):
    __slots__ = ("mw",)

    def __init__(self, head: RequestHead, now: float, mw: Buffer) -> None:
        super().__init__(head, now)
        self.mw = mw

    def request(self) -> Generator[Effect[Any], Any, Forward | Respond]:
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := (yield ReadBody(self.mw.timeout)):
                parts.append(chunk)
                size += len(chunk)
                if size > self.mw.limit:
                    return Respond(Response.problem(413, f"limit is {self.mw.limit} bytes"))
        except BodyTimeout:
            return Respond(Response.text(408))
        except ClientDisconnected:
            return Respond(Response.text(400, "client disconnected"))
        return Forward(self.head, ReplayBody(b"".join(parts)))


class Cap(Middleware):
    """Counts the body bytes the app reads and aborts past ``limit``."""

    def __init__(self, app: Any, *, limit: int = 4, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.limit = limit

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _CapExchange(head, now, self.limit)


class _CapExchange(Exchange):
    __slots__ = ("limit", "seen")
    request_read_timeout = 0.2

    def __init__(self, head: RequestHead, now: float, limit: int) -> None:
        super().__init__(head, now)
        self.limit = limit
        self.seen = 0

    def request_body(self, chunk: bytes, more: bool) -> None:
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise Abort(Response.text(413, "body too large"))


class GatedCap(Cap):
    """A Cap whose ``request()`` refuses ``/closed`` and forwards the rest."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _GatedCapExchange(head, now, self.limit)


class _GatedCapExchange(_CapExchange):
    __slots__ = ()

    def request(self) -> Forward | Respond:
        if self.head.path == "/closed":
            return Respond(Response.text(403, "closed"))
        return Forward(self.head)


class Collect(Middleware):
    """Holds the body back and sends it in one piece with a Content-Length."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _CollectExchange(head, now)


class _CollectExchange(Exchange):
    __slots__ = ("parts",)

    def request(self) -> Forward:
        self.parts: list[bytes] = []
        return Forward(self.head)

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        self.parts.append(chunk)
        return () if more else (b"".join(self.parts),)

    def response(self, head: ResponseHead) -> ResponseHead:
        length = str(sum(len(p) for p in self.parts)).encode("ascii")
        return head.replace(headers=set_header(head.headers, b"content-length", length))


class Rewrite(Middleware):
    """Rewrites every field of the head a proxy middleware would."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _RewriteExchange(head, now)


class _RewriteExchange(Exchange):
    def request(self) -> Forward:
        head = self.head.replace(
            scheme="https",
            client=("203.0.113.7", 0),
            root_path="/api" + self.head.root_path,
            path="/api" + self.head.path,
            raw_path=b"/api" + self.head.raw_path,
            headers=set_header(self.head.headers, b"host", b"example.org"),
            server=("example.org", 443),
        )
        return Forward(head)


class Gate(Middleware):
    """Answers 403 itself for /private, passes /public untouched (no exchange)."""

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        if head.path.startswith("/public"):
            return None
        return _GateExchange(head, now)


class _GateExchange(Exchange):
    def request(self) -> Forward | Respond:
        if self.head.path.startswith("/private"):
            return Respond(Response.problem(403, "private"))
        return Forward(self.head)


class Broken(Middleware):
    """A middleware with a bug in ``where`` ("request" or "response")."""

    def __init__(self, app: Any, *, where: str, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.where = where

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _BrokenExchange(head, now) if self.where == "request" else _BrokenResponse(head, now)


class _BrokenExchange(Exchange):
    def request(self) -> Forward:
        raise ZeroDivisionError("bug in request()")


class _BrokenResponse(Exchange):
    def response(self, head: ResponseHead) -> ResponseHead:
        raise ZeroDivisionError("bug in response()")


class Clocked(Middleware):
    """Reports the clock value it was given in ``x-now``."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _ClockedExchange(head, now)


class _ClockedExchange(Exchange):
    def response(self, head: ResponseHead) -> ResponseHead:
        value = str(self.now).encode("ascii")
        return head.replace(headers=(*head.headers, (b"x-now", value)))


def tag(app: Any, clock: FakeClock) -> Any:
    return Tag(app, clock=clock)


def seen_header(name: bytes, value: bytes | None) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        assert seen.head.header(name) == value, seen.head.headers

    return check


def seen_where(**fields: Any) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        for name, value in fields.items():
            actual = seen.body if name == "body" else getattr(seen.head, name)
            assert actual == value, (name, actual, value)

    return check


def not_called(seen: Seen | None) -> None:
    assert seen is None, seen


POST = "POST"

# -- a malformed head found lazily, by a response-side hook ----------------------


class LateHeaders(Middleware):
    """Reads the request headers only in ``response`` (or ``response_body``)."""

    def __init__(self, app: Any, *, in_body: bool = False, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.in_body = in_body

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _LateBody(head, now) if self.in_body else _LateHead(head, now)


class _LateHead(Exchange):
    def response(self, head: ResponseHead) -> ResponseHead:
        return head.replace(headers=(*head.headers, (b"x-lines", b"%d" % len(self.head.headers))))


class _LateBody(Exchange):
    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        return (chunk,) if self.head.headers else ()


def malformed_length(app: Any, middleware: Callable[[Any], Any]) -> Any:
    """``middleware(app)`` behind a server that passes ``Content-Length: ten`` through.

    The inner app is given the request without it (wsgiref.validate, around it, would
    refuse it): only the middleware sees the malformed head.
    """
    if detect_interface(app) == "wsgi":

        def wsgi_clean(environ: Any, start_response: Any) -> Any:
            return app({**environ, "CONTENT_LENGTH": ""}, start_response)

        inner = middleware(wsgi_clean)

        def wsgi(environ: Any, start_response: Any) -> Any:
            return inner({**environ, "CONTENT_LENGTH": "ten"}, start_response)

        return wsgi

    async def asgi_clean(scope: Any, receive: Any, send: Any) -> None:
        headers = [line for line in scope["headers"] if line[0] != b"content-length"]
        await app({**scope, "headers": headers}, receive, send)

    outer = middleware(asgi_clean)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        headers = [*scope["headers"], (b"content-length", b"ten")]
        await outer({**scope, "headers": headers}, receive, send)

    return asgi


MALFORMED = b"Bad Request: invalid Content-Length: b'ten'\n"


#: A path whose bytes are not UTF-8 (WSGI: PATH_INFO "/caf\xe9"; ASGI: a surrogate escape).
NOT_UTF8 = Request(path="/caf\udce9", raw_path=b"/caf%E9")
NOT_UTF8_BODY = "Bad Request: PATH_INFO is not valid UTF-8: '/caf\xe9'\n".encode()
#: Middleware that read the path, that never do, and one that only decides on headers.
PATH_READERS: list[tuple[str, Callable[[Any, FakeClock], Any]]] = [
    ("exchange", lambda app, clock: tag(app, clock)),
    ("security-headers", lambda app, clock: SecurityHeaders(app, clock=clock)),
    ("proxy-headers", lambda app, clock: ProxyHeaders(app, trusted="*", clock=clock)),
]


CASES = [
    *(
        Case(
            f"core-non-utf8-path-is-400-for-{name}",
            build,
            [Step(NOT_UTF8, status=400, body=NOT_UTF8_BODY, seen=lambda seen: seen is None)],
        )
        for name, build in PATH_READERS
    ),
    Case(
        "core-non-utf8-root-path-is-400",
        tag,
        [
            Step(
                Request(path="/m\udcffnt/a", root_path="/m\udcffnt", raw_path=b"/m%FFnt/a"),
                status=400,
                body="Bad Request: SCRIPT_NAME is not valid UTF-8: '/m\xffnt'\n".encode(),
            )
        ],
    ),
    Case(
        "core-malformed-head-found-by-response-hook-is-400",
        lambda app, clock: malformed_length(app, lambda a: LateHeaders(a, clock=clock)),
        [Step(status=400, body=MALFORMED)],
    ),
    Case(
        "core-malformed-head-found-by-response-body-hook-is-400",
        lambda app, clock: malformed_length(
            app, lambda a: LateHeaders(a, clock=clock, in_body=True)
        ),
        [Step(status=400, body=MALFORMED)],
    ),
    Case(
        "core-get-adds-response-header",
        tag,
        [
            Step(
                Request(query_string=b"a=1&b=%20"),
                status=200,
                headers=[TEXT, (b"x-tag", b"1")],
                body=b"hello",
                seen=seen_where(query_string=b"a=1&b=%20", values={"bridge.tag": "tagged"}),
            )
        ],
    ),
    Case(
        "core-duplicate-and-mixed-case-request-headers",
        tag,
        [
            Step(
                Request(
                    headers=[
                        HOST,
                        (b"X-Dup", b"a"),
                        (b"accept", b"text/html"),
                        (b"x-dup", b"b"),
                        (b"Cookie", b"a=1"),
                        (b"cookie", b"b=2"),
                        (b"x_under", b"spoof"),
                    ]
                ),
                status=200,
                seen=seen_where(
                    headers=(
                        HOST,
                        (b"x-dup", b"a, b"),
                        (b"accept", b"text/html"),
                        (b"cookie", b"a=1; b=2"),
                    )
                ),
            )
        ],
    ),
    Case(
        "core-non-ascii-path-under-root-path",
        tag,
        [
            Step(
                Request(path="/mnt/caf\u00e9/\u2603", root_path="/mnt"),
                status=200,
                seen=seen_where(
                    path="/mnt/caf\u00e9/\u2603",
                    root_path="/mnt",
                    raw_path=b"/mnt/caf%C3%A9/%E2%98%83",
                ),
            )
        ],
    ),
    Case(
        "core-empty-body",
        lambda app, clock: Buffer(app, clock=clock),
        [Step(Request(method=POST, body=b""), status=200, body=b"", seen=seen_where(body=b""))],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-chunked-body-through-effects-and-replay",
        lambda app, clock: Buffer(app, clock=clock),
        [
            Step(
                Request(method=POST, body=[b"ab", b"", b"cd", b"e"], chunked=True),
                status=200,
                body=b"abcde",
                seen=seen_where(body=b"abcde", headers=(HOST, (b"content-length", b"5"))),
            )
        ],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-oversize-body-refused-by-effects",
        lambda app, clock: Buffer(app, clock=clock, limit=4),
        [
            Step(
                Request(method=POST, body=[b"abc", b"def"], chunked=True),
                status=413,
                has_headers=[(b"content-type", b"application/problem+json")],
                seen=not_called,
            )
        ],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-stalled-body-gives-408",
        lambda app, clock: Buffer(app, clock=clock, timeout=0.1),
        [
            Step(
                Request(method=POST, body=[b"ab", b"cd"], stall_after=1, stall_seconds=5),
                status=408,
                seen=not_called,
            )
        ],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-disconnect-mid-body-seen-by-effects",
        lambda app, clock: Buffer(app, clock=clock),
        [
            Step(
                Request(method=POST, body=[b"ab", b"cd"], disconnect_after=1),
                status=400,
                body=b"client disconnected",
                seen=not_called,
            )
        ],
    ),
    Case(
        "core-disconnect-mid-body-seen-by-app",
        tag,
        [
            Step(
                Request(method=POST, body=[b"ab", b"cd"], disconnect_after=1),
                status=200,
                seen=seen_where(body=b"ab"),
            )
        ],
    ),
    Case(
        "core-streaming-cap-aborts-app-read",
        lambda app, clock: Cap(app, clock=clock, limit=4),
        [
            Step(
                Request(method=POST, body=[b"abc", b"def"], chunked=True),
                status=413,
                body=b"body too large",
            ),
            Step(Request(method=POST, body=b"abc"), status=200, body=b"abc"),
        ],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-streaming-read-timeout-gives-408",
        lambda app, clock: Cap(app, clock=clock, limit=100),
        [
            Step(
                Request(method=POST, body=[b"ab", b"cd"], stall_after=1, stall_seconds=5),
                status=408,
            )
        ],
        inner=InnerApp(echo=True),
    ),
    # An exchange with request_body alone (and a request() decision): the head is still
    # held, so a refused read and an app's failure are answered as above.
    Case(
        "core-streaming-cap-with-a-request-decision",
        lambda app, clock: GatedCap(app, clock=clock, limit=4),
        [
            Step(Request(method=POST, path="/closed", body=b"ab"), status=403, body=b"closed"),
            Step(Request(method=POST, body=b"abc"), status=200, body=b"abc"),
            Step(
                Request(method=POST, body=[b"abc", b"def"], chunked=True),
                status=413,
                body=b"body too large",
            ),
        ],
        inner=InnerApp(echo=True),
    ),
    Case(
        "core-streaming-cap-app-raises-before-start",
        lambda app, clock: Cap(app, clock=clock, limit=100),
        [Step(Request(method=POST, body=b"ab"), status=500, body=b"Internal Server Error\n")],
        inner=InnerApp(fail="before_start"),
    ),
    Case(
        "core-streaming-cap-app-raises-after-start",
        lambda app, clock: Cap(app, clock=clock, limit=100),
        [Step(Request(method=POST, body=b"ab"), status=500, body=b"Internal Server Error\n")],
        inner=InnerApp(fail="after_start"),
    ),
    Case(
        "core-streaming-cap-empty-first-chunk-and-empty-body",
        lambda app, clock: Cap(app, clock=clock, limit=100),
        [
            Step(Request(method=POST, body=b"ab"), status=200, body=b"data"),
            Step(Request(method=POST, body=b"ab"), status=200, body=b"data"),
        ],
        inner=InnerApp(body=[b"", b"", b"data", b""]),
    ),
    Case(
        "core-streaming-cap-empty-response",
        lambda app, clock: Cap(app, clock=clock, limit=100),
        [Step(Request(method=POST, body=b"ab"), status=204, body=b"")],
        inner=InnerApp(status=204, headers=(), body=()),
    ),
    Case(
        "core-app-raises-before-start",
        tag,
        [Step(status=500, body=b"Internal Server Error\n", lacks_headers=[b"x-tag"])],
        inner=InnerApp(fail="before_start"),
    ),
    Case(
        "core-app-raises-after-start-response",
        tag,
        [Step(status=500, body=b"Internal Server Error\n", lacks_headers=[b"x-tag"])],
        inner=InnerApp(fail="after_start"),
    ),
    Case(
        "core-app-raises-after-first-chunk",
        tag,
        [Step(status=200, body=b"one", error=True, has_headers=[(b"x-tag", b"1")])],
        inner=InnerApp(body=[b"one", b"two"], fail="after_body"),
    ),
    Case(
        "core-empty-first-chunk",
        tag,
        [Step(status=200, body=b"data", headers=[TEXT, (b"x-tag", b"1")])],
        inner=InnerApp(body=[b"", b"", b"data", b""]),
    ),
    Case(
        "core-empty-body-response",
        tag,
        [Step(status=204, body=b"", headers=[(b"x-tag", b"1")])],
        inner=InnerApp(status=204, headers=(), body=()),
    ),
    Case(
        "core-several-set-cookie-headers",
        tag,
        [
            Step(
                status=200,
                headers=[
                    TEXT,
                    (b"Set-Cookie", b"a=1; Path=/"),
                    (b"Set-Cookie", b"b=2; HttpOnly"),
                    (b"x-tag", b"1"),
                ],
            )
        ],
        inner=InnerApp(
            headers=(TEXT, (b"Set-Cookie", b"a=1; Path=/"), (b"Set-Cookie", b"b=2; HttpOnly"))
        ),
    ),
    Case(
        "core-response-body-hook-holds-back-and-sets-length",
        lambda app, clock: Collect(app, clock=clock),
        [Step(status=200, body=b"abc", headers=[TEXT, (b"content-length", b"3")])],
        inner=InnerApp(body=[b"a", b"", b"b", b"c"]),
    ),
    Case(
        "core-rewritten-head-reaches-the-app",
        lambda app, clock: Rewrite(app, clock=clock),
        [
            Step(
                Request(path="/v1/caf\u00e9"),
                status=200,
                seen=seen_where(
                    scheme="https",
                    client=("203.0.113.7", 0),
                    root_path="/api",
                    path="/api/v1/caf\u00e9",
                    raw_path=b"/api/v1/caf%C3%A9",
                    headers=((b"host", b"example.org"),),
                    server=("example.org", 443),
                ),
            )
        ],
    ),
    Case(
        "core-respond-now-and-pass-through",
        lambda app, clock: Gate(app, clock=clock),
        [
            Step(Request(path="/private/x"), status=403, seen=not_called),
            Step(Request(path="/public/x"), status=200, body=b"hello"),
            Step(Request(path="/other"), status=200, body=b"hello"),
        ],
    ),
    Case(
        "core-middleware-bug-in-request-gives-500",
        lambda app, clock: Broken(app, clock=clock, where="request"),
        [Step(status=500, body=b"Internal Server Error\n", seen=not_called)],
    ),
    Case(
        "core-middleware-bug-in-response-gives-500",
        lambda app, clock: Broken(app, clock=clock, where="response"),
        [Step(status=500, body=b"Internal Server Error\n")],
    ),
    Case(
        "core-fake-clock-is-passed-in",
        lambda app, clock: Clocked(app, clock=clock),
        [
            Step(status=200, has_headers=[(b"x-now", b"1000.0")]),
            Step(advance=2.5, status=200, has_headers=[(b"x-now", b"1002.5")]),
        ],
    ),
    Case(
        "core-stack-order-outer-first",
        lambda app, clock: Rewrite(Tag(app, clock=clock), clock=clock),
        [
            Step(
                status=200,
                headers=[TEXT, (b"x-tag", b"1")],
                seen=seen_where(scheme="https", values={"bridge.tag": "tagged"}),
            )
        ],
    ),
]


# -- ASGI only: lifespan and websocket pass through untouched ------------------


async def _lifespan(app: Any) -> None:
    sent: list[Any] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, receive, send)
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def _websocket(app: Any) -> None:
    sent: list[Any] = []
    messages = iter([{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [HOST],
        "scheme": "ws",
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "hi"},
        {"type": "websocket.close", "code": 1000},
    ]


class WsGate(Middleware):
    """Opts into websockets; refuses /ws/private, rewrites the rest to wss."""

    scope_types = frozenset({"http", "websocket"})

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _WsGateExchange(head, now)


class _WsGateExchange(Exchange):
    def request(self) -> Forward | Respond:
        if self.head.path.startswith("/ws/private"):
            return Respond(Response.text(403))
        return Forward(self.head.replace(scheme="wss"))


def _websocket_scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [HOST],
        "scheme": "ws",
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }


async def _websocket_gate(app: Any) -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["scheme"])
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    gate = WsGate(inner)
    for path, expected in (
        ("/ws/private", [{"type": "websocket.close", "code": 1008}]),
        ("/ws/public", [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}]),
    ):
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "websocket.connect"}

        async def send(message: Any, sent: list[Any] = sent) -> None:
            sent.append(message)

        await gate(_websocket_scope(path), receive, send)
        assert sent == expected, (path, sent)
    assert seen == ["wss"]


ASGI_CASES = [
    AsgiCase("core-websocket-opt-in-respond-and-forward", Tag, _websocket_gate),
    AsgiCase("core-lifespan-passes-through", Tag, _lifespan),
    AsgiCase("core-websocket-passes-through", Tag, _websocket),
]
