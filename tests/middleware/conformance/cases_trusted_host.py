"""TrustedHost cases, including the bad-input list."""

from __future__ import annotations

from typing import Any

from bridge import ProxyHeaders, TrustedHost
from bridge.testing import FakeClock, Request

from . import AsgiCase, Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
INVALID = [TEXT, (b"content-length", b"19")]
ALLOWED = ["example.com", "*.example.org", ".example.net", "[::1]", "api.test:8443", "www.w.test"]


def trusted(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return TrustedHost(app, clock=clock, **options)

    return build


def host(value: bytes, **kw: Any) -> Request:
    return Request(headers=[(b"host", value)], **kw)


def ok(value: bytes) -> Step:
    return Step(host(value), status=200, headers=[TEXT], body=b"hello")


def refused(value: bytes) -> Step:
    return Step(host(value), status=400, headers=INVALID, body=b"Invalid host header")


CASES = [
    Case(
        "trusted-host-allowed-patterns",
        trusted(allowed_hosts=ALLOWED),
        [
            ok(b"example.com"),
            ok(b"EXAMPLE.com:8000"),  # a pattern without a port matches any port
            ok(b"example.com."),  # one trailing dot, as Django drops it
            ok(b"a.example.org"),
            ok(b"a.b.example.org:81"),
            ok(b"example.net"),  # Django's ".example.net": the name and its subdomains
            ok(b"x.example.net"),
            ok(b"[::1]:8000"),
            ok(b"api.test:8443"),
        ],
    ),
    Case(
        "trusted-host-refused-hosts",
        trusted(allowed_hosts=ALLOWED),
        [
            refused(b"evil.com"),
            refused(b"example.org"),  # "*.example.org" is subdomains only
            refused(b"example.com.evil.com"),
            refused(b"api.test"),  # the pattern names a port
            refused(b"api.test:443"),
            refused(b"[::2]"),
        ],
    ),
    Case(
        "trusted-host-malformed-hosts-refused-even-with-star",
        trusted(),
        [
            ok(b"anything.example"),
            refused(b"caf\xc3\xa9.example"),  # non-ASCII (IDNA hosts arrive as xn--)
            refused(b"a.com, b.com"),  # two Host lines joined
            refused(b"a.com/path"),
            refused(b"a.com:80x"),
            refused(b"user@a.com"),
            refused(b""),
            refused(b"."),
            refused(b"[::1"),
            refused(b"a" * 1000 + b" b"),
        ],
    ),
    Case(
        "trusted-host-missing-host",
        trusted(),
        [
            Step(
                Request(headers=()),
                status=400,
                headers=[TEXT, (b"content-length", b"19")],
                body=b"Missing host header",
            ),
            Step(Request(headers=(), http_version="1.0"), status=200, body=b"hello"),
        ],
    ),
    Case(
        "trusted-host-www-redirect-keeps-path-and-query-exactly",
        trusted(allowed_hosts=ALLOWED),
        [
            Step(
                host(
                    b"w.test:8080",
                    path="/a b/é",
                    raw_path=b"/a%20b/%C3%A9%2F",
                    query_string=b"q=%41&r=1",
                ),
                status=307,
                headers=[
                    (b"location", b"http://www.w.test:8080/a%20b/%C3%A9%2F?q=%41&r=1"),
                    TEXT,
                    (b"content-length", b"0"),
                ],
                body=b"",
            ),
            Step(
                host(b"w.test", scheme="https"),
                status=307,
                has_headers=[(b"location", b"https://www.w.test/")],
            ),
        ],
    ),
    Case(
        "trusted-host-www-redirect-off",
        trusted(allowed_hosts=["www.w.test"], www_redirect=False),
        [refused(b"w.test")],
    ),
    Case(
        "trusted-host-checks-host-after-proxy-headers",
        lambda app, clock: ProxyHeaders(
            TrustedHost(app, allowed_hosts=["public.example"], clock=clock),
            use=("for", "proto", "host"),
            clock=clock,
        ),
        [
            Step(
                Request(headers=[(b"host", b"app:8000"), (b"x-forwarded-host", b"public.example")]),
                status=200,
            ),
            Step(
                Request(headers=[(b"host", b"public.example"), (b"x-forwarded-host", b"evil.com")]),
                status=400,
            ),
        ],
    ),
]


def _websocket_scope(host_value: bytes) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host_value)],
        "scheme": "ws",
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }


async def _websocket_handshakes(app: Any) -> None:
    for value, first in ((b"example.com", "websocket.accept"), (b"evil.com", "websocket.close")):
        sent: list[Any] = []
        messages = iter(
            [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}]
        )

        async def receive() -> Any:
            return next(messages)  # noqa: B023 - used within this iteration only

        async def send(message: Any) -> None:
            sent.append(message)  # noqa: B023 - used within this iteration only

        await app(_websocket_scope(value), receive, send)
        assert sent[0]["type"] == first, (value, sent)
        if first == "websocket.close":
            assert sent == [{"type": "websocket.close", "code": 1008}]


ASGI_CASES = [
    AsgiCase(
        "trusted-host-websocket-handshake-checked",
        lambda app: TrustedHost(app, allowed_hosts=["example.com"]),
        _websocket_handshakes,
    ),
]
