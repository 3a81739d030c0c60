"""Flask wrapped the Flask way: ``app.wsgi_app = X(app.wsgi_app)``."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from bridge import CustomHeaders, ProxyHeaders, SecurityHeaders

app = Flask(__name__)


@app.get("/")
def index() -> Any:
    response = jsonify(
        client=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        script_root=request.script_root,
        url=request.url,
        nonce=request.environ.get("bridge.csp_nonce"),
    )
    response.headers["X-Powered-By"] = "Flask"
    return response


@app.get("/healthz")
def health() -> str:
    return "ok"


# Flask declares wsgi_app as a method, so mypy needs to be told (as for werkzeug's ProxyFix).
app.wsgi_app = SecurityHeaders(app.wsgi_app, preset="strict", exempt=["/healthz"])  # type: ignore[method-assign]
app.wsgi_app = CustomHeaders(app.wsgi_app, remove_response=["x-powered-by"])  # type: ignore[method-assign]
app.wsgi_app = ProxyHeaders(app.wsgi_app, use=["for", "proto", "host", "prefix"])  # type: ignore[method-assign]
