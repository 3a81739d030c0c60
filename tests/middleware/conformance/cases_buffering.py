"""RequestBuffering cases for the shared conformance table.

``close_connection=False`` everywhere: under ASGI the rejections also carry
``Connection: close``, which a WSGI app may not send (PEP 3333); that one
documented difference is tested in tests/test_buffering_request.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bridge.buffering import RequestBuffering, RequestBufferingRule, ResponseBuffering
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
HOST = (b"host", b"testserver")
ECHO = InnerApp(echo=True)
CROSSED = "Content Too Large: request body crossed the limit 10 while being read"
MISSING_DIR = "/nonexistent/bridge-spool"


def request_buffering(**options: Any) -> Callable[[Any, FakeClock], Any]:
    def build(app: Any, clock: FakeClock) -> Any:
        return RequestBuffering(app, clock=clock, close_connection=False, **options)

    return build


def dechunked(**options: Any) -> Callable[[Any, FakeClock], Any]:
    """RequestBuffering behind a server that de-chunks the body and drops Transfer-Encoding:
    the request has no framing header, yet its body arrives (under WSGI the environ says
    ``wsgi.input_terminated``: read to the end)."""

    def build(app: Any, clock: FakeClock) -> Any:
        mw = RequestBuffering(app, clock=clock, close_connection=False, **options)
        if mw.interface == "wsgi":

            def wsgi_server(environ: dict[str, Any], start_response: Any) -> Any:
                environ = {k: v for k, v in environ.items() if k != "HTTP_TRANSFER_ENCODING"}
                assert environ["wsgi.input_terminated"]
                assert "CONTENT_LENGTH" not in environ
                return mw(environ, start_response)

            return wsgi_server

        async def asgi_server(scope: dict[str, Any], receive: Any, send: Any) -> None:
            headers = [line for line in scope["headers"] if line[0] != b"transfer-encoding"]
            await mw({**scope, "headers": headers}, receive, send)

        return asgi_server

    return build


def not_called(seen: Seen | None) -> None:
    assert seen is None, "the app must not run"


def saw(
    body: bytes, *, length: bool = True, error: str | None = None
) -> Callable[[Seen | None], None]:
    """The app ran and read ``body`` (announced with a Content-Length when ``length``)."""

    def check(seen: Seen | None) -> None:
        assert seen is not None, "the app must run"
        assert (seen.body, seen.body_error) == (body, error)
        if length:
            assert seen.head.header(b"content-length") == str(len(body)).encode()
            assert seen.head.header(b"transfer-encoding") is None

    return check


def no_length(seen: Seen | None) -> None:
    assert seen is not None, "the app must run"
    assert seen.head.header(b"content-length") is None
    assert seen.head.header(b"transfer-encoding") is None


def post(body: bytes | list[bytes], path: str = "/", **kw: Any) -> Request:
    return Request(method="POST", path=path, body=body, **kw)


def reply(
    status: int,
    message: str,
    request: Request,
    seen: Callable[[Seen | None], object] | None = not_called,
) -> Step:
    """A step answered with the middleware's plain-text rejection."""
    body = message.encode() + b"\n"
    return Step(
        request=request,
        status=status,
        headers=[TEXT, (b"content-length", str(len(body)).encode())],
        body=body,
        seen=seen,
    )


def ok(request: Request, body: bytes, **kw: Any) -> Step:
    return Step(request=request, status=200, headers=[TEXT], body=body, seen=saw(body, **kw))


PROBLEM = json.dumps(
    {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": "declared Content-Length 2 is over the limit 1",
    },
    separators=(",", ":"),
).encode()


CASES = [
    Case(
        id="buffering-declared-over-limit-413-before-app",
        build=request_buffering(max_body_size=10),
        inner=ECHO,
        steps=[
            reply(
                413,
                "Content Too Large: declared Content-Length 11 is over the limit 10",
                post(b"x" * 11, headers=[HOST, (b"expect", b"100-continue")]),
            )
        ],
    ),
    Case(
        id="buffering-at-limit-spooled-to-file-with-content-length",
        build=request_buffering(max_body_size=10, memory_size=4),
        inner=ECHO,
        steps=[ok(post([b"0123", b"45", b"6789"], chunked=True), b"0123456789")],
    ),
    Case(
        id="buffering-chunked-crosses-limit-413",
        build=request_buffering(max_body_size=10),
        inner=ECHO,
        steps=[reply(413, CROSSED, post([b"a" * 6, b"b" * 6, b"c"], chunked=True))],
    ),
    Case(
        id="buffering-stream-mode-crosses-limit-413-app-read-fails",
        build=request_buffering(max_body_size=10, mode="stream"),
        inner=ECHO,
        steps=[
            reply(
                413,
                CROSSED,
                post([b"a" * 6, b"b" * 6, b"c"], chunked=True),
                seen=saw(b"a" * 6, length=False, error="disconnected"),
            )
        ],
    ),
    Case(
        id="buffering-stream-mode-under-limit-passes-through",
        build=request_buffering(max_body_size=10, mode="stream"),
        inner=ECHO,
        steps=[ok(post([b"abc", b"def"], chunked=True), b"abcdef", length=False)],
    ),
    Case(
        # No timeout, no deadline: a declared body within the cap has nothing left to
        # watch (the server delivers exactly its length) and passes untouched; the head
        # is still checked, and a chunked body is still counted.
        id="buffering-stream-mode-unwatched-still-caps",
        build=request_buffering(max_body_size=10, mode="stream", body_timeout=None),
        inner=ECHO,
        steps=[
            ok(post(b"abcdef"), b"abcdef"),
            reply(
                413,
                "Content Too Large: declared Content-Length 11 is over the limit 10",
                post(b"x" * 11),
            ),
            reply(
                413,
                CROSSED,
                post([b"a" * 6, b"b" * 6, b"c"], chunked=True),
                seen=saw(b"a" * 6, length=False, error="disconnected"),
            ),
            reply(
                400,
                "Bad Request: both Content-Length and Transfer-Encoding were sent",
                post(b"abc", chunked=True, headers=[HOST, (b"content-length", b"3")]),
            ),
        ],
    ),
    Case(
        id="buffering-stream-mode-declared-over-limit-413-before-app",
        build=request_buffering(max_body_size=10, mode="stream"),
        inner=ECHO,
        steps=[
            reply(
                413,
                "Content Too Large: declared Content-Length 11 is over the limit 10",
                post(b"x" * 11),
            ),
            ok(post(b"x" * 10), b"x" * 10),
        ],
    ),
    Case(
        id="buffering-stream-mode-app-raises-before-start-500",
        build=request_buffering(max_body_size=10, mode="stream"),
        inner=InnerApp(fail="before_start"),
        steps=[Step(request=post(b"abc"), status=500, body=b"Internal Server Error\n")],
    ),
    Case(
        id="buffering-stream-mode-app-raises-after-first-chunk",
        build=request_buffering(max_body_size=10, mode="stream"),
        inner=InnerApp(body=(b"ab", b"cd"), fail="after_body"),
        steps=[Step(request=post(b"abc"), status=200, body=b"ab", error=True)],
    ),
    Case(
        id="buffering-content-length-with-transfer-encoding-400",
        build=request_buffering(),
        inner=ECHO,
        steps=[
            reply(
                400,
                "Bad Request: both Content-Length and Transfer-Encoding were sent",
                post(b"abc", chunked=True, headers=[HOST, (b"content-length", b"3")]),
            )
        ],
    ),
    Case(
        id="buffering-stalled-body-408",
        build=request_buffering(body_timeout=0.2),
        inner=ECHO,
        steps=[
            reply(
                408,
                "Request Timeout: request body stalled after 3 bytes",
                post([b"abc", b"def"], chunked=True, stall_after=1),
            )
        ],
    ),
    Case(
        id="buffering-stream-mode-stalled-body-408",
        build=request_buffering(body_timeout=0.2, mode="stream"),
        inner=ECHO,
        steps=[
            reply(
                408,
                "Request Timeout: request body stalled after 3 bytes",
                post([b"abc", b"def"], chunked=True, stall_after=1),
                seen=saw(b"abc", length=False, error="disconnected"),
            )
        ],
    ),
    Case(
        id="buffering-client-disconnects-mid-body",
        build=request_buffering(memory_size=2),
        inner=ECHO,
        steps=[
            reply(
                400,
                "Bad Request: client disconnected mid-body after 3 bytes",
                post([b"abc", b"def"], disconnect_after=1),
            )
        ],
    ),
    Case(
        id="buffering-app-reads-part-of-the-body",
        build=request_buffering(memory_size=2),
        inner=InnerApp(read_body=False),
        steps=[Step(request=post([b"abc", b"def"], chunked=True), status=200, body=b"hello")],
    ),
    Case(
        # RFC 9112: no Content-Length and no Transfer-Encoding is no body. The server is
        # still asked (a WSGI server with wsgi.input_terminated may deliver one anyway: see
        # the unframed cases); when it says none follows, the app gets the request untouched,
        # with no Content-Length announced.
        id="buffering-http11-request-without-framing-forwarded-untouched",
        build=request_buffering(),
        inner=ECHO,
        steps=[ok(Request(), b"", length=False), Step(request=Request(), seen=no_length)],
    ),
    Case(
        # Issue 13 item 6: no framing header, yet the server delivers a body. The cap holds
        # whatever framing the server reports; a body under it reaches the app with a
        # Content-Length (so AsgiToWsgi behind it reads no further).
        id="buffering-unframed-body-the-server-delivers-is-capped",
        build=dechunked(max_body_size=1000),
        inner=ECHO,
        steps=[
            reply(
                413,
                "Content Too Large: request body crossed the limit 1000 while being read",
                post([b"x" * 2500, b"y" * 2500], chunked=True),
            ),
            ok(post([b"abc", b"def"], chunked=True), b"abcdef"),
            ok(post(b"", chunked=True), b"", length=False),
        ],
    ),
    Case(
        id="buffering-stream-mode-unframed-body-the-server-delivers-is-capped",
        build=dechunked(max_body_size=1000, mode="stream"),
        inner=ECHO,
        steps=[
            reply(
                413,
                "Content Too Large: request body crossed the limit 1000 while being read",
                post([b"x" * 600, b"y" * 600], chunked=True),
                seen=saw(b"x" * 600, length=False, error="disconnected"),
            ),
            ok(post([b"abc", b"def"], chunked=True), b"abcdef", length=False),
        ],
    ),
    Case(
        id="buffering-empty-and-bodyless-requests",
        build=request_buffering(max_body_size=0),
        inner=ECHO,
        steps=[ok(post(b""), b""), ok(Request(), b"", length=False)],
    ),
    Case(
        id="buffering-rule-raises-the-limit-on-upload-under-root-path",
        build=request_buffering(
            max_body_size=10,
            rules=[RequestBufferingRule("/upload", methods=["POST"], max_body_size=100)],
        ),
        inner=ECHO,
        steps=[
            ok(post(b"x" * 50, path="/mnt/upload/a", root_path="/mnt"), b"x" * 50),
            reply(
                413,
                "Content Too Large: declared Content-Length 50 is over the limit 10",
                post(b"x" * 50, path="/mnt/uploads", root_path="/mnt"),
            ),
            reply(
                413,
                "Content Too Large: declared Content-Length 50 is over the limit 10",
                Request(method="PUT", path="/upload", body=b"x" * 50),
            ),
        ],
    ),
    Case(
        id="buffering-rule-lowers-the-limit-and-streams",
        build=request_buffering(
            max_body_size=100,
            rules=[RequestBufferingRule("/small", max_body_size=2, mode="stream")],
        ),
        inner=ECHO,
        steps=[
            reply(
                413,
                "Content Too Large: request body crossed the limit 2 while being read",
                post([b"ab", b"c"], path="/small", chunked=True),
                seen=saw(b"ab", length=False, error="disconnected"),
            ),
            ok(post([b"ab", b"c"], chunked=True), b"abc"),
        ],
    ),
    Case(
        id="buffering-problem-json",
        build=request_buffering(max_body_size=1, error_format="problem+json"),
        inner=ECHO,
        steps=[
            Step(
                request=post(b"ab"),
                status=413,
                headers=[
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(PROBLEM)).encode()),
                ],
                body=PROBLEM,
                seen=not_called,
            )
        ],
    ),
    Case(
        id="buffering-disk-refuses-the-spool-503",
        build=request_buffering(memory_size=2, spool_dir=MISSING_DIR),
        inner=ECHO,
        steps=[
            reply(
                503,
                "Service Unavailable: the request body could not be stored",
                post([b"ab", b"cd"], chunked=True),
            ),
            ok(post(b"ab"), b"ab"),  # in memory: the disk is not needed
        ],
    ),
    Case(
        id="buffering-disk-refuses-the-spool-500-configured",
        build=request_buffering(memory_size=2, spool_dir=MISSING_DIR, spool_error_status=500),
        inner=ECHO,
        steps=[
            reply(
                500,
                "Internal Server Error: the request body could not be stored",
                post(b"abcd"),
            )
        ],
    ),
]


# -- ResponseBuffering ----------------------------------------------------------


def response_buffering(**options: Any) -> Callable[[Any, FakeClock], Any]:
    def build(app: Any, clock: FakeClock) -> Any:
        return ResponseBuffering(app, **options)

    return build


def length(n: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(n).encode())


INTERNAL = Step(status=500, headers=[TEXT, length(22)], body=b"Internal Server Error\n")
THREE = InnerApp(body=(b"ab", b"", b"cd", b"ef"))

CASES += [
    Case(
        id="response-buffering-held-and-sent-with-content-length",
        build=response_buffering(),
        inner=THREE,
        steps=[Step(status=200, headers=[TEXT, length(6)], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-app-length-replaced-by-the-real-one",
        build=response_buffering(),
        inner=InnerApp(headers=(TEXT, length(6)), body=(b"abc", b"def")),
        steps=[Step(status=200, headers=[TEXT, length(6)], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-spills-to-file",
        build=response_buffering(max_size=3, max_file_size=100),
        inner=THREE,
        steps=[Step(status=200, headers=[TEXT, length(6)], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-stream-once-over-memory",
        build=response_buffering(max_size=3, overflow="stream"),
        inner=THREE,
        steps=[Step(status=200, headers=[TEXT], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-stream-once-over-file",
        build=response_buffering(max_size=2, max_file_size=2),
        inner=THREE,
        steps=[Step(status=200, headers=[TEXT], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-disk-refused-streams",
        build=response_buffering(max_size=2, spool_dir=MISSING_DIR),
        inner=THREE,
        steps=[Step(status=200, headers=[TEXT], body=b"abcdef")],
    ),
    Case(
        id="response-buffering-never-event-stream",
        build=response_buffering(),
        inner=InnerApp(headers=((b"content-type", b"text/event-stream"),), body=(b"data: 1\n\n",)),
        steps=[Step(status=200, lacks_headers=[b"content-length"], body=b"data: 1\n\n")],
    ),
    Case(
        id="response-buffering-x-accel-buffering-no-passed-on",
        build=response_buffering(),
        inner=InnerApp(headers=(TEXT, (b"x-accel-buffering", b"no")), body=(b"a", b"b")),
        steps=[Step(status=200, headers=[TEXT, (b"x-accel-buffering", b"no")], body=b"ab")],
    ),
    Case(
        id="response-buffering-bypass-rule",
        build=response_buffering(bypass=lambda method, status, headers: status == 201),
        inner=InnerApp(status=201, body=(b"a", b"b")),
        steps=[Step(status=201, headers=[TEXT], body=b"ab")],
    ),
    Case(
        id="response-buffering-head-and-204-untouched",
        build=response_buffering(),
        inner=InnerApp(status=204, headers=(), body=()),
        steps=[Step(status=204, headers=[], body=b"")],
    ),
    Case(
        id="response-buffering-head-request",
        build=response_buffering(),
        inner=InnerApp(headers=(TEXT, length(5))),
        steps=[Step(request=Request(method="HEAD"), status=200, headers=[TEXT, length(5)])],
    ),
    Case(
        id="response-buffering-app-raises-while-held-500",
        build=response_buffering(),
        inner=InnerApp(body=(b"ab", b"cd"), fail="after_body"),
        steps=[INTERNAL],
    ),
    Case(
        id="response-buffering-app-raises-after-start-500",
        build=response_buffering(),
        inner=InnerApp(fail="after_start"),
        steps=[INTERNAL],
    ),
    Case(
        id="response-buffering-app-raises-after-stream-once-over",
        build=response_buffering(max_size=1, overflow="stream"),
        inner=InnerApp(body=(b"ab", b"cd"), fail="after_body"),
        steps=[Step(status=200, headers=[TEXT], body=b"ab", error=True)],
    ),
    Case(
        id="request-and-response-buffering-stacked",
        build=lambda app, clock: RequestBuffering(
            ResponseBuffering(app, max_size=4), memory_size=2, clock=clock
        ),
        inner=ECHO,
        steps=[
            Step(
                request=post([b"abc", b"def"], chunked=True),
                status=200,
                headers=[TEXT, length(6)],
                body=b"abcdef",
                seen=saw(b"abcdef"),
            )
        ],
    ),
]
