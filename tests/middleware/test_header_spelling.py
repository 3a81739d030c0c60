"""Header names a user configures reach a WSGI server in the case the user wrote them
(as werkzeug, flask-cors and Django send them); an ASGI server gets lowercase names.

Every WSGI call goes through ``wsgiref.validate`` (``bridge.testing.call_wsgi``).
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge import CORS, CustomHeaders, RequestId, SecurityHeaders
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

ORIGIN = (b"origin", b"https://site.example")
PREFLIGHT = Request(
    method="OPTIONS",
    headers=[(b"host", b"t"), ORIGIN, (b"access-control-request-method", b"POST")],
)


def _names(lines: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _value in lines]


CASES: list[tuple[str, Any, Request, list[bytes]]] = [
    (
        "custom-headers",
        lambda app: CustomHeaders(
            app,
            set_response={"Cache-Control": "no-store"},
            default_response=[("X-Frame-Options", "DENY")],
            append_response={"Link": "</a>; rel=preload"},
        ),
        Request(),
        [b"Cache-Control", b"X-Frame-Options", b"Link"],
    ),
    (
        "security-headers",
        lambda app: SecurityHeaders(app, preset="basic"),
        Request(scheme="https"),
        [b"Strict-Transport-Security", b"X-Content-Type-Options", b"Referrer-Policy"],
    ),
    (
        "cors-actual",
        lambda app: CORS(
            app,
            allow_origins=["https://site.example"],
            allow_credentials=True,
            expose_headers=["X-Total"],
        ),
        Request(headers=[(b"host", b"t"), ORIGIN]),
        [
            b"Access-Control-Allow-Origin",
            b"Access-Control-Allow-Credentials",
            b"Access-Control-Expose-Headers",
        ],
    ),
    (
        "cors-preflight",
        lambda app: CORS(app, allow_origins=["https://site.example"], allow_methods=["POST"]),
        PREFLIGHT,
        [
            b"Access-Control-Allow-Methods",
            b"Access-Control-Max-Age",
            b"Access-Control-Allow-Origin",
        ],
    ),
    (
        "request-id",
        lambda app: RequestId(app, header="X-Correlation-ID", generator=lambda: "id-1"),
        Request(),
        [b"X-Correlation-ID"],
    ),
]


@pytest.mark.parametrize(
    ("build", "request_", "spelled"),
    [pytest.param(build, request, spelled, id=name) for name, build, request, spelled in CASES],
)
def test_configured_names_keep_their_case_under_wsgi_and_are_lowercase_under_asgi(
    build: Any,
    request_: Request,
    spelled: list[bytes],
    anyio_backend: tuple[str, dict[str, object]],
) -> None:
    wsgi = call_wsgi(build(InnerApp().wsgi()), request_)
    asgi = call_asgi(build(InnerApp().asgi()), request_, backend=anyio_backend[0])
    for name in spelled:
        assert name in _names(wsgi.headers), (name, wsgi.headers)
        assert name.lower() in _names(asgi.headers), (name, asgi.headers)
    assert all(name == name.lower() for name in _names(asgi.headers)), asgi.headers
    # Apart from the case of those names, the two responses are the same.
    lowered = [(name.lower(), value) for name, value in wsgi.headers]
    assert (wsgi.status, lowered, wsgi.body) == (asgi.status, asgi.headers, asgi.body)


def test_the_app_keeps_its_own_spelling_of_lines_the_middleware_leaves() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain"), ("X-App", "1")])
        return [b"ok"]

    wrapped = CustomHeaders(app, set_response={"Cache-Control": "no-store"})
    result = call_wsgi(wrapped, Request())
    assert result.headers == [
        (b"content-type", b"text/plain"),
        (b"X-App", b"1"),
        (b"Cache-Control", b"no-store"),
    ]


def test_a_configured_name_replacing_the_apps_line_takes_the_configured_spelling() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("cache-control", "public"), ("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = CustomHeaders(app, set_response={"CACHE-control": "no-store"})
    result = call_wsgi(wrapped, Request())
    assert result.headers == [(b"Content-Type", b"text/plain"), (b"CACHE-control", b"no-store")]
