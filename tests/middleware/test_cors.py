"""CORS: Starlette's CORSMiddleware side by side, configuration errors, logging, frameworks."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask
from starlette.middleware.cors import CORSMiddleware

from bridge import CORS
from bridge.testing import InnerApp, Request, Result, call_asgi, call_wsgi
from tests.middleware.asgi_client import asgi_request

SITE = b"https://site.test"
POLICIES: dict[str, dict[str, Any]] = {
    "listed-with-credentials": {
        "allow_origins": ["https://site.test"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["X-Token"],
        "allow_credentials": True,
        "expose_headers": ["X-Total"],
    },
    "any-origin": {"allow_origins": ["*"], "allow_headers": ["*"], "max_age": 5},
    "regex": {"allow_origin_regex": r"https://.*\.site\.test", "allow_methods": ["PUT"]},
}
REQUESTS = {
    "preflight-ok": Request(
        method="OPTIONS",
        headers=[
            (b"host", b"t"),
            (b"origin", SITE),
            (b"access-control-request-method", b"GET"),
            (b"access-control-request-headers", b"x-token"),
        ],
    ),
    "preflight-bad-method": Request(
        method="OPTIONS",
        headers=[(b"host", b"t"), (b"origin", SITE), (b"access-control-request-method", b"PATCH")],
    ),
    "preflight-regex": Request(
        method="OPTIONS",
        headers=[
            (b"host", b"t"),
            (b"origin", b"https://a.site.test"),
            (b"access-control-request-method", b"PUT"),
        ],
    ),
    "actual-allowed": Request(headers=[(b"host", b"t"), (b"origin", SITE)]),
    "actual-regex": Request(headers=[(b"host", b"t"), (b"origin", b"https://a.site.test")]),
    "no-origin": Request(headers=[(b"host", b"t")]),
}


def _comparable(result: Result) -> tuple[int, dict[bytes, bytes], bytes]:
    """Status, headers by lowercase name (Starlette orders them differently) and body."""
    headers = {name.lower(): value for name, value in result.headers}
    headers.pop(b"content-length", None)
    return result.status, headers, result.body


@pytest.mark.parametrize("request_name", list(REQUESTS))
@pytest.mark.parametrize("policy", list(POLICIES))
def test_same_answers_as_starlette(policy: str, request_name: str) -> None:
    options = POLICIES[policy]
    request = REQUESTS[request_name]
    ours = _comparable(call_asgi(CORS(InnerApp().asgi(), **options), request))
    theirs = _comparable(call_asgi(CORSMiddleware(InnerApp().asgi(), **options), request))
    if request_name.startswith("actual") and b"access-control-allow-origin" not in ours[1]:
        # On purpose: Starlette adds these two for an origin it does not allow; bridge does not.
        theirs[1].pop(b"access-control-allow-credentials", None)
        theirs[1].pop(b"access-control-expose-headers", None)
    assert ours == theirs


def test_disallowed_origin_gets_no_cors_headers_unlike_starlette() -> None:
    """On purpose: Starlette adds Allow-Credentials and Expose-Headers for any origin."""
    request = Request(headers=[(b"host", b"t"), (b"origin", b"https://evil.test")])
    options = POLICIES["listed-with-credentials"]
    ours = call_asgi(CORS(InnerApp().asgi(), **options), request)
    theirs = call_asgi(CORSMiddleware(InnerApp().asgi(), **options), request)
    assert theirs.header(b"access-control-allow-credentials") == b"true"
    assert not [name for name, _ in ours.headers if name.startswith(b"access-control-")]
    assert ours.header(b"vary") == b"Origin"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, ValueError, "list the origins"),
        ({"allow_origins": ["example.com"]}, ValueError, "is not an origin"),
        ({"allow_origins": ["https://example.com/"]}, ValueError, "trailing '/'"),
        ({"allow_origins": ["https://example.com/app"]}, ValueError, "is not an origin"),
        ({"allow_origins": ["https://example.com\r\nX: 1"]}, ValueError, "is not an origin"),
        ({"allow_origins": [b"https://example.com"]}, TypeError, "must be a str"),
        ({"allow_origin_regex": "https://(["}, ValueError, "not a valid regex"),
        ({"allow_methods": ["GET POST"]}, ValueError, "not an HTTP token"),
        ({"allow_methods": ["GET\r\n"]}, ValueError, "not an HTTP token"),
        ({"allow_headers": ["X Token"]}, ValueError, "not an HTTP token"),
        ({"expose_headers": ["X-Total\n"]}, ValueError, "not an HTTP token"),
        ({"max_age": -1}, ValueError, "max_age"),
        ({"max_age": "600"}, ValueError, "max_age"),
        ({"allow_credentials": "yes"}, TypeError, "allow_credentials"),
        ({"check_websocket_origin": 1}, TypeError, "check_websocket_origin"),
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CORS(InnerApp().wsgi(), **options)


def test_configured_values_are_normalised() -> None:
    app = CORS(
        InnerApp().wsgi(),
        allow_origins=["HTTPS://Site.Test", "null"],
        allow_methods=["get", "PURGE"],
    )
    preflight = Request(
        method="OPTIONS",
        headers=[(b"host", b"t"), (b"origin", SITE), (b"access-control-request-method", b"PURGE")],
    )
    result = call_wsgi(app, preflight)
    assert result.status == 200
    assert result.header(b"access-control-allow-methods") == b"GET, PURGE"
    sandboxed = call_wsgi(app, Request(headers=[(b"host", b"t"), (b"origin", b"null")]))
    assert sandboxed.header(b"access-control-allow-origin") == b"null"


@pytest.mark.parametrize(
    ("headers", "method", "logged"),
    [
        (
            [(b"origin", b"garbage\x01")],
            "GET",
            "CORS ignored GET / (client 127.0.0.1): malformed Origin 'garbage\\x01'",
        ),
        (
            [(b"origin", b"https://evil.test"), (b"access-control-request-method", b"GET")],
            "OPTIONS",
            "CORS refused OPTIONS / (client 127.0.0.1): preflight from Origin 'https://evil.test': "
            "origin",
        ),
    ],
)
def test_bad_input_is_one_log_line(
    headers: list[tuple[bytes, bytes]], method: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    app = CORS(InnerApp().wsgi(), allow_origins=["https://site.test"])
    result = call_wsgi(app, Request(method=method, headers=[(b"host", b"t"), *headers]))
    assert result.status in (200, 400)
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.name == "bridge.middleware.cors"
    assert record.getMessage() == logged


def test_fastapi_add_middleware(anyio_backend: tuple[str, dict[str, object]]) -> None:
    api = FastAPI()

    @api.get("/items")
    async def items() -> list[int]:
        return [1, 2]

    api.add_middleware(CORS, allow_origins=["https://site.test"], allow_methods=["GET", "POST"])
    backend = anyio_backend[0]
    preflight = asgi_request(
        api,
        "OPTIONS",
        "/items",
        {"Origin": "https://site.test", "Access-Control-Request-Method": "POST"},
        backend=backend,
    )
    assert (preflight.status_code, preflight.text) == (200, "OK")
    assert preflight.headers["access-control-allow-methods"] == "GET, POST"
    actual = asgi_request(api, "GET", "/items", {"Origin": "https://site.test"}, backend=backend)
    assert actual.json() == [1, 2]
    assert actual.headers["access-control-allow-origin"] == "https://site.test"
    assert actual.headers["vary"] == "Origin"


def test_flask_wsgi_app() -> None:
    flask_app = Flask("cors")

    @flask_app.get("/")
    def index() -> tuple[str, dict[str, str]]:
        return "flask", {"Vary": "Cookie"}

    flask_app.wsgi_app = CORS(  # type: ignore[method-assign]
        flask_app.wsgi_app, allow_origins=["https://site.test"], allow_credentials=True
    )
    client = flask_app.test_client()
    response = client.get("/", headers={"Origin": "https://site.test"})
    assert response.data == b"flask"
    assert response.headers.getlist("Vary") == ["Cookie, Origin"]
    assert response.headers["Access-Control-Allow-Origin"] == "https://site.test"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    refused = client.options(
        "/",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
    )
    assert (refused.status_code, refused.data) == (400, b"Disallowed CORS origin")


@pytest.mark.parametrize("call", [call_wsgi, call_asgi], ids=["wsgi", "asgi"])
def test_exempt_paths_are_left_to_the_app(call: Any) -> None:
    """Outside the CORS paths (``CORS_URLS_REGEX`` in django-cors-headers) a preflight
    reaches the app and no response gets CORS lines or ``Vary: Origin``."""
    outside_api = re.compile(r"(?!/api(?![^/]))")
    inner = InnerApp()
    app = CORS(
        inner.wsgi() if call is call_wsgi else inner.asgi(),
        allow_origins=["https://a.example"],
        exempt=outside_api,
    )
    origin = [(b"host", b"testserver"), (b"origin", b"https://a.example")]
    preflight = [*origin, (b"access-control-request-method", b"GET")]
    site = call(app, Request(method="OPTIONS", path="/page", headers=preflight))
    assert site.seen is not None
    assert site.seen.head.method == "OPTIONS"
    assert site.header(b"access-control-allow-origin") is None
    page = call(app, Request(path="/page", headers=origin))
    assert page.header(b"access-control-allow-origin") is None
    assert page.header(b"vary") is None
    api = call(app, Request(path="/api/items", headers=origin))
    assert api.header(b"access-control-allow-origin") == b"https://a.example"
    answered = call(app, Request(method="OPTIONS", path="/api", headers=preflight))
    assert answered.seen is None  # answered by CORS, never reached the app
    assert answered.header(b"access-control-allow-methods") is not None
