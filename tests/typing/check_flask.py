"""A Flask project wrapping ``app.wsgi_app`` in every bridge middleware, under ``mypy --strict``."""

from __future__ import annotations

from typing import assert_type

import flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge import (
    CORS,
    AsgiToWsgi,
    Compression,
    ConcurrencyLimit,
    CustomHeaders,
    HTTPSRedirect,
    ProxyHeaders,
    RateLimit,
    RequestBuffering,
    RequestId,
    ResponseBuffering,
    SecurityHeaders,
    TrustedHost,
    WsgiToAsgi,
    request_values,
)
from bridge.middleware import stack
from bridge.types import RequestValues


def wrap_every_middleware(app: flask.Flask) -> None:
    # mypy refuses any assignment to a method ([method-assign], werkzeug's ProxyFix too);
    # that is the only error: each middleware is a valid value for Flask.wsgi_app.
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = ProxyHeaders(app.wsgi_app, trusted=["10.0.0.0/8"])  # type: ignore[method-assign]
    app.wsgi_app = SecurityHeaders(app.wsgi_app, preset="strict")  # type: ignore[method-assign]
    app.wsgi_app = CustomHeaders(app.wsgi_app, set_response={"X-A": "1"})  # type: ignore[method-assign]
    app.wsgi_app = TrustedHost(app.wsgi_app, allowed_hosts=["example.com"])  # type: ignore[method-assign]
    app.wsgi_app = HTTPSRedirect(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = CORS(app.wsgi_app, allow_origins=["https://a.example"])  # type: ignore[method-assign]
    app.wsgi_app = RequestId(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = Compression(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = RequestBuffering(app.wsgi_app, mode="stream")  # type: ignore[method-assign]
    app.wsgi_app = ResponseBuffering(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = RateLimit(app.wsgi_app, "10/minute", algorithm="sliding_window")  # type: ignore[method-assign]
    app.wsgi_app = ConcurrencyLimit(app.wsgi_app, 8)  # type: ignore[method-assign]
    app.wsgi_app = AsgiToWsgi(WsgiToAsgi(app.wsgi_app))  # type: ignore[method-assign]
    app.wsgi_app = stack(app.wsgi_app, ProxyHeaders, SecurityHeaders)  # type: ignore[method-assign]


def read_values() -> None:
    values = request_values(flask.request)
    assert_type(values, RequestValues)
    assert_type(values.csp_nonce, str | None)
    assert_type(values.request_id, str | None)
