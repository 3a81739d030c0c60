"""CORS cases, including the bad-input list."""

from __future__ import annotations

from typing import Any

from bridge import CORS
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import AsgiCase, Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
HOST = (b"host", b"api.test")
SITE = b"https://site.test"
ACAO = b"access-control-allow-origin"
ACAC = b"access-control-allow-credentials"
ACEH = b"access-control-expose-headers"
ACRM = b"access-control-request-method"
ACRH = b"access-control-request-headers"
PREFLIGHT_VARY = (
    b"vary",
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network",
)
SITE_POLICY: dict[str, Any] = {
    "allow_origins": ["https://site.test"],
    "allow_methods": ["GET", "POST", "DELETE"],
    "allow_headers": ["X-Token"],
    "allow_credentials": True,
    "expose_headers": ["X-Total"],
    "max_age": 60,
}


def cors(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return CORS(app, clock=clock, **options)

    return build


def get(*headers: tuple[bytes, bytes], **kw: Any) -> Request:
    return Request(headers=[HOST, *headers], **kw)


def preflight(origin: bytes, method: bytes, *more: tuple[bytes, bytes]) -> Request:
    return get((b"origin", origin), (ACRM, method), *more, method="OPTIONS")


def app_not_called(seen: Seen | None) -> None:
    assert seen is None, "a preflight must never reach the app"


def preflight_lines(allow_headers: bytes, *more: tuple[bytes, bytes]) -> list[Any]:
    return [
        PREFLIGHT_VARY,
        (b"access-control-allow-methods", b"GET, POST, DELETE"),
        (b"access-control-max-age", b"60"),
        (b"access-control-allow-headers", allow_headers),
        (ACAC, b"true"),
        *more,
    ]


SAFE_AND_TOKEN = b"Accept, Accept-Language, Content-Language, Content-Type, X-Token"

CASES = [
    Case(
        "cors-preflight-allowed-answered-without-the-app",
        cors(**SITE_POLICY),
        [
            Step(
                preflight(SITE, b"DELETE", (ACRH, b"x-token, Content-Type")),
                status=200,
                headers=[
                    TEXT,
                    (b"content-length", b"2"),
                    *preflight_lines(SAFE_AND_TOKEN, (ACAO, SITE)),
                ],
                body=b"OK",
                seen=app_not_called,
            )
        ],
    ),
    Case(
        "cors-preflight-refusals-say-why",
        cors(**SITE_POLICY),
        [
            Step(
                preflight(b"https://evil.test", b"GET"),
                status=400,
                body=b"Disallowed CORS origin",
                lacks_headers=[ACAO],
                seen=app_not_called,
            ),
            Step(preflight(SITE, b"PUT"), status=400, body=b"Disallowed CORS method"),
            Step(preflight(SITE, b"get"), status=400, body=b"Disallowed CORS method"),
            Step(
                preflight(SITE, b"GET", (ACRH, b"x-token, x-other")),
                status=400,
                body=b"Disallowed CORS headers",
                has_headers=[(ACAO, SITE)],
            ),
            Step(
                preflight(b"https://evil.test", b"PUT", (ACRH, b"x-other")),
                status=400,
                body=b"Disallowed CORS origin, method, headers",
            ),
            Step(
                preflight(SITE, b"GET", (b"access-control-request-private-network", b"true")),
                status=400,
                body=b"Disallowed CORS private-network",
            ),
        ],
    ),
    Case(
        "cors-preflight-bad-input",
        cors(**SITE_POLICY),
        [
            Step(preflight(b"site.test", b"GET"), status=400, body=b"Disallowed CORS origin"),
            Step(
                preflight(b"https://site.test/", b"GET"),
                status=400,
                body=b"Disallowed CORS origin",
            ),
            Step(
                preflight(b"https://SITE.test", b"GET"), status=400, body=b"Disallowed CORS origin"
            ),
            Step(
                preflight(b"https://caf\xc3\xa9.test", b"GET"),
                status=400,
                body=b"Disallowed CORS origin",
            ),
            Step(preflight(b"https://" + b"a" * 5000, b"GET"), status=400),
            Step(
                preflight(SITE, b"GET", (ACRH, b"x-token, bad header")),
                status=400,
                body=b"Disallowed CORS headers",
            ),
            Step(
                preflight(SITE, b"GET", (ACRH, b", ".join([b"x-token"] * 1000) + b",,")),
                status=200,
            ),
        ],
    ),
    Case(
        "cors-actual-request-allowed-origin",
        cors(**SITE_POLICY),
        [
            Step(
                get((b"origin", SITE), method="POST", body=b"data"),
                status=200,
                headers=[
                    TEXT,
                    (b"vary", b"Origin"),
                    (ACAO, SITE),
                    (ACAC, b"true"),
                    (ACEH, b"X-Total"),
                ],
                body=b"hello",
            )
        ],
    ),
    Case(
        "cors-actual-request-other-origin-gets-only-vary",
        cors(**SITE_POLICY),
        [
            Step(
                get((b"origin", b"https://evil.test")),
                status=200,
                headers=[TEXT, (b"vary", b"Origin")],
            ),
            Step(get(), status=200, headers=[TEXT, (b"vary", b"Origin")]),
            Step(
                get((b"origin", b"\xff\xfe garbage")),
                status=200,
                headers=[TEXT, (b"vary", b"Origin")],
            ),
        ],
    ),
    Case(
        "cors-vary-merged-into-the-apps-single-line",
        cors(**SITE_POLICY),
        [
            Step(
                get((b"origin", SITE)),
                status=200,
                has_headers=[(b"vary", b"Accept-Encoding, cookie, Origin")],
            )
        ],
        inner=InnerApp(
            headers=(TEXT, (b"Vary", b"Accept-Encoding"), (b"Vary", b"cookie, accept-encoding"))
        ),
    ),
    Case(
        "cors-vary-origin-already-there-or-star",
        cors(**SITE_POLICY),
        [Step(get(), status=200, headers=[TEXT, (b"Vary", b"origin")])],
        inner=InnerApp(headers=(TEXT, (b"Vary", b"origin"))),
    ),
    Case(
        "cors-vary-star-kept",
        cors(**SITE_POLICY),
        [Step(get(), status=200, headers=[TEXT, (b"Vary", b"*")])],
        inner=InnerApp(headers=(TEXT, (b"Vary", b"*"))),
    ),
    Case(
        "cors-app-cors-headers-replaced-for-allowed-origin",
        cors(**SITE_POLICY),
        [
            Step(
                get((b"origin", SITE)),
                status=200,
                headers=[
                    TEXT,
                    (b"vary", b"Origin"),
                    (ACAO, SITE),
                    (ACAC, b"true"),
                    (ACEH, b"X-Total"),
                ],
            )
        ],
        inner=InnerApp(headers=(TEXT, (b"Access-Control-Allow-Origin", b"*"))),
    ),
    Case(
        "cors-any-origin-without-credentials-is-star",
        cors(allow_origins=["*"], allow_headers=["*"], allow_methods=["*"]),
        [
            Step(
                get((b"origin", b"https://anyone.test")),
                status=200,
                headers=[TEXT, (b"vary", b"Origin"), (ACAO, b"*")],
            ),
            Step(
                preflight(b"https://anyone.test", b"PATCH", (ACRH, b"X-A, x-b")),
                status=200,
                has_headers=[(ACAO, b"*"), (b"access-control-allow-headers", b"x-a, x-b")],
            ),
        ],
    ),
    Case(
        "cors-origin-regex",
        cors(allow_origin_regex=r"https://[a-z]+\.site\.test"),
        [
            Step(
                get((b"origin", b"https://app.site.test")),
                has_headers=[(ACAO, b"https://app.site.test")],
            ),
            Step(get((b"origin", b"https://app.site.test.evil.test")), lacks_headers=[ACAO]),
        ],
    ),
    Case(
        "cors-options-without-request-method-reaches-the-app",
        cors(**SITE_POLICY),
        [
            Step(
                get((b"origin", SITE), method="OPTIONS"),
                status=200,
                has_headers=[(ACAO, SITE)],
                body=b"hello",
            )
        ],
    ),
    Case(
        "cors-private-network-allowed",
        cors(**SITE_POLICY, allow_private_network=True),
        [
            Step(
                preflight(SITE, b"GET", (b"access-control-request-private-network", b"true")),
                status=200,
                has_headers=[(b"access-control-allow-private-network", b"true")],
            )
        ],
    ),
    *(
        Case(  # without the CORS lines a browser hides the 500 from the page
            f"cors-app-error-500-carries-the-cors-lines-{fail.replace('_', '-')}",
            cors(**SITE_POLICY),
            [
                Step(
                    get((b"origin", SITE)),
                    status=500,
                    body=b"Internal Server Error\n",
                    has_headers=[(b"access-control-allow-origin", SITE), (b"vary", b"Origin")],
                )
            ],
            inner=InnerApp(fail=fail),
        )
        for fail in ("before_start", "after_start")
    ),
]


def _websocket_scope(origin: bytes | None) -> dict[str, Any]:
    headers = [HOST] + ([(b"origin", origin)] if origin is not None else [])
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "scheme": "wss",
        "client": ("127.0.0.1", 1),
        "server": ("api.test", 443),
        "subprotocols": [],
    }


async def _handshake(app: Any, origin: bytes | None) -> str:
    sent: list[Any] = []
    messages = iter([{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await app(_websocket_scope(origin), receive, send)
    if sent[0]["type"] == "websocket.close":
        assert sent == [{"type": "websocket.close", "code": 1008}]
    return str(sent[0]["type"])


async def _websocket_origin_checked(app: Any) -> None:
    assert await _handshake(app, SITE) == "websocket.accept"
    assert await _handshake(app, None) == "websocket.accept"  # not a browser
    assert await _handshake(app, b"https://evil.test") == "websocket.close"
    assert await _handshake(app, b"not an origin") == "websocket.close"


async def _websocket_origin_not_checked(app: Any) -> None:
    assert await _handshake(app, b"https://evil.test") == "websocket.accept"


ASGI_CASES = [
    AsgiCase(
        "cors-websocket-origin-checked-when-asked",
        lambda app: CORS(app, allow_origins=["https://site.test"], check_websocket_origin=True),
        _websocket_origin_checked,
    ),
    AsgiCase(
        "cors-websocket-origin-not-checked-by-default",
        lambda app: CORS(app, allow_origins=["https://site.test"]),
        _websocket_origin_not_checked,
    ),
]
