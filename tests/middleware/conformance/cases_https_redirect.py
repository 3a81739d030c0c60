"""HTTPSRedirect cases, including the bad-input list."""

from __future__ import annotations

from typing import Any

from bridge import HTTPSRedirect, ProxyHeaders
from bridge.testing import FakeClock, Request

from . import AsgiCase, Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")


def https(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return HTTPSRedirect(app, clock=clock, **options)

    return build


def moved(location: bytes, status: int = 308) -> dict[str, Any]:
    return {
        "status": status,
        "headers": [(b"location", location), TEXT, (b"content-length", b"0")],
        "body": b"",
    }


def host(value: bytes, **kw: Any) -> Request:
    return Request(headers=[(b"host", value)], **kw)


CASES = [
    Case(
        "https-redirect-keeps-root-path-path-and-query-exactly",
        https(),
        [
            Step(
                host(
                    b"Example.com",
                    root_path="/mnt",
                    path="/mnt/a b/é/x%2Fy",
                    raw_path=b"/mnt/a%20b/%C3%A9/x%252Fy",
                    query_string=b"q=%41%20b&r=%zz&s=\xff",
                ),
                **moved(b"https://example.com/mnt/a%20b/%C3%A9/x%252Fy?q=%41%20b&r=%zz&s=%FF"),
            ),
            Step(host(b"example.com", method="POST"), **moved(b"https://example.com/")),
        ],
    ),
    Case(
        "https-redirect-leaves-https-alone",
        https(),
        [Step(host(b"example.com", scheme="https"), status=200, body=b"hello")],
    ),
    Case(
        "https-redirect-status-301",
        https(status=301),
        [Step(host(b"example.com", path="/p"), **moved(b"https://example.com/p", 301))],
    ),
    Case(
        "https-redirect-ports",
        https(),
        [
            Step(host(b"example.com:80"), **moved(b"https://example.com/")),
            Step(host(b"example.com:443"), **moved(b"https://example.com/")),
            Step(host(b"example.com:8080"), **moved(b"https://example.com:8080/")),
            Step(host(b"[::1]:80"), **moved(b"https://[::1]/")),
        ],
    ),
    Case(
        "https-redirect-exempt-paths",
        https(exempt=["/.well-known/acme-challenge"]),
        [
            Step(host(b"a.test", path="/.well-known/acme-challenge/tok"), status=200),
            Step(host(b"a.test", root_path="/m", path="/m/.well-known/acme-challenge"), status=200),
            Step(host(b"a.test", path="/.well-known/other"), status=308),
        ],
    ),
    Case(
        "https-redirect-bad-host-is-400-never-a-redirect-to-it",
        https(),
        [
            Step(host(b"evil.com/x"), status=400, body=b"Invalid host header"),
            Step(host(b"a.com, b.com"), status=400, body=b"Invalid host header"),
            Step(host(b"caf\xc3\xa9.test"), status=400, body=b"Invalid host header"),
            Step(host(b""), status=400, body=b"Invalid host header"),
        ],
    ),
    Case(
        "https-redirect-http10-without-host-uses-server-name",
        https(),
        [
            Step(
                Request(headers=(), http_version="1.0", server=("srv.test", 8000)),
                **moved(b"https://srv.test:8000/"),
            )
        ],
    ),
    Case(
        "https-redirect-after-proxy-headers-sees-the-forwarded-scheme",
        lambda app, clock: ProxyHeaders(HTTPSRedirect(app, clock=clock), clock=clock),
        [
            Step(host(b"a.test"), status=308),
            Step(
                Request(headers=[(b"host", b"a.test"), (b"x-forwarded-proto", b"https")]),
                status=200,
            ),
        ],
    ),
]


def _websocket_scope(scheme: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"a.test")],
        "scheme": scheme,
        "client": ("127.0.0.1", 1),
        "server": ("a.test", 80),
        "subprotocols": [],
    }


async def _plain_ws_refused_wss_accepted(app: Any) -> None:
    for scheme, first in (("ws", "websocket.close"), ("wss", "websocket.accept")):
        sent: list[Any] = []
        messages = iter(
            [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}]
        )

        async def receive() -> Any:
            return next(messages)  # noqa: B023 - used within this iteration only

        async def send(message: Any) -> None:
            sent.append(message)  # noqa: B023 - used within this iteration only

        await app(_websocket_scope(scheme), receive, send)
        assert sent[0]["type"] == first, (scheme, sent)


ASGI_CASES = [
    AsgiCase(
        "https-redirect-websocket-over-ws-refused",
        lambda app: HTTPSRedirect(app),
        _plain_ws_refused_wss_accepted,
    ),
]

#: An https request passes without a head, but a path that cannot be translated still
#: gets the 400 every middleware gives it (PATH_INFO / SCRIPT_NAME / query not translatable).
CASES += [
    Case(
        "https-redirect-https-with-non-utf8-path-is-400",
        https(),
        [
            Step(
                Request(path="/caf\udce9", raw_path=b"/caf%E9", scheme="https"),
                status=400,
                body="Bad Request: PATH_INFO is not valid UTF-8: '/caf\xe9'\n".encode(),
            ),
            Step(
                Request(
                    path="/m\udcffnt/a",
                    root_path="/m\udcffnt",
                    raw_path=b"/m%FFnt/a",
                    scheme="https",
                ),
                status=400,
                body="Bad Request: SCRIPT_NAME is not valid UTF-8: '/m\xffnt'\n".encode(),
            ),
            Step(
                host(b"example.com", scheme="https", path="/ok", query_string=b"a=\xff"), status=200
            ),
        ],
    ),
]
