"""Flask with the five middleware, wrapped the Flask way: ``app.wsgi_app = X(app.wsgi_app)``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request

from bridge import CORS, Compression, HTTPSRedirect, RequestId, TrustedHost

from .five_common import (
    ALLOWED_HOSTS,
    BIG,
    CORS_OPTIONS,
    FIRST,
    SECOND,
    TIMED_OUT,
    gate_deadline,
    gate_open,
    redirected,
)

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "hello"


@app.get("/id")
def request_id() -> str:
    return f"{request.environ['bridge.request_id']} {request.headers['X-Request-ID']}"


@app.get("/big")
def big() -> Response:
    return Response(BIG, mimetype="text/plain")


@app.get("/secure/<path:rest>")
def secure(rest: str) -> str:
    return "served over plain http"


@app.get("/stream")
def stream() -> Response:
    gate = request.args["gate"]

    def halves() -> Iterator[bytes]:
        yield FIRST
        deadline = gate_deadline()
        while not gate_open(gate):
            if time.monotonic() > deadline:
                yield TIMED_OUT
                return
            time.sleep(0.01)
        yield SECOND

    return Response(halves(), mimetype="text/plain")


def _wrap(middleware: Any, **options: Any) -> None:
    # Flask declares wsgi_app as a method, so mypy needs to be told (as for werkzeug's ProxyFix).
    app.wsgi_app = middleware(app.wsgi_app, **options)  # type: ignore[method-assign]


_wrap(Compression)
_wrap(RequestId)
_wrap(CORS, **CORS_OPTIONS)
_wrap(HTTPSRedirect, exempt=redirected)
_wrap(TrustedHost, allowed_hosts=ALLOWED_HOSTS)
