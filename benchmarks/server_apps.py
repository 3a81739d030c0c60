"""Apps for bench_servers.py: one hello world per server process, chosen by ``BENCH_APP``.

Each server process imports ``benchmarks.server_apps:app`` with ``BENCH_APP`` naming one
variant of :data:`VARIANTS` (an app, an adapter around it, or a middleware around it), so
the peers that change a Flask or Starlette app (flask-cors, Flask-Limiter, slowapi, ...)
get a fresh app of their own. Nothing here is imported by the benchmark driver itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

HELLO = "Hello, world!"
ORIGIN = "https://site.example"
#: wrk sends ``Host: 127.0.0.1:<port>``; TrustedHost compares the name without the port.
HOSTS = ["127.0.0.1", "localhost"]
NEVER_REACHED = "1000000000/minute"
CORS_OPTIONS: dict[str, Any] = {"allow_origins": [ORIGIN], "allow_methods": ["GET", "POST"]}
GZIP_LEVEL = 6


# -- the hello worlds --------------------------------------------------------------


def flask_hello() -> Any:
    from flask import Flask

    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: HELLO)
    return app


def starlette_hello() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    # Starlette's own hello world is ``async def``: a plain function would run in a thread.
    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse(HELLO)

    return Starlette(routes=[Route("/", index)])


def fastapi_hello() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    # FastAPI's own hello world is ``async def``: a plain ``def`` would run in a thread.
    @app.get("/", response_class=PlainTextResponse)
    async def index() -> str:
        return HELLO

    return app


# -- targets 2 and 3: adapters -----------------------------------------------------


def _bridge_wsgi_to_asgi() -> Any:
    from bridge import WsgiToAsgi

    return WsgiToAsgi(flask_hello())


def _uvicorn_wsgi() -> Any:
    # uvicorn's own adapter; ``uvicorn --interface wsgi`` picks a2wsgi when it is installed.
    from uvicorn.middleware.wsgi import _WSGIMiddleware

    return _WSGIMiddleware(flask_hello())


def _bridge_asgi_to_wsgi() -> Any:
    from bridge import AsgiToWsgi

    return AsgiToWsgi(fastapi_hello())


def _a2wsgi_asgi_to_wsgi() -> Any:
    from a2wsgi import ASGIMiddleware

    return ASGIMiddleware(fastapi_hello())


# -- target 4: middleware around Starlette (ASGI) and Flask (WSGI) -----------------


def _bridge(name: str, **options: Any) -> Callable[[Any], Any]:
    def wrap(app: Any) -> Any:
        import bridge

        return getattr(bridge, name)(app, **options)

    return wrap


def _same_as_secure() -> dict[str, Any]:
    from benchmarks._peers import SAME_AS_SECURE

    return SAME_AS_SECURE


def _security_headers(app: Any) -> Any:
    from bridge import SecurityHeaders

    return SecurityHeaders(app, **_same_as_secure())


def _secure_asgi(app: Any) -> Any:
    from secure.middleware import SecureASGIMiddleware

    from benchmarks._peers import SECURE

    return SecureASGIMiddleware(app, secure=SECURE)


def _secure_wsgi(app: Any) -> Any:
    from secure.middleware import SecureWSGIMiddleware

    from benchmarks._peers import SECURE

    return SecureWSGIMiddleware(app, secure=SECURE)


def _uvicorn_proxy_headers(app: Any) -> Any:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return ProxyHeadersMiddleware(app, "127.0.0.1")


def _proxy_fix(app: Any) -> Any:
    from werkzeug.middleware.proxy_fix import ProxyFix

    return ProxyFix(app, x_for=1, x_proto=1)


def _starlette(module: str, name: str, **options: Any) -> Callable[[Any], Any]:
    def wrap(app: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(app, **options)

    return wrap


def _rate_limit(app: Any) -> Any:
    from bridge import RateLimit

    return RateLimit(app, NEVER_REACHED)


def _concurrency_limit(app: Any) -> Any:
    from bridge import ConcurrencyLimit

    return ConcurrencyLimit(app, 1000)


def _slowapi() -> Any:
    from benchmarks._peers import with_slowapi

    return with_slowapi(starlette_hello(), NEVER_REACHED, "memory://")


def _flask_limiter() -> Any:
    from benchmarks._peers import with_flask_limiter

    return with_flask_limiter(flask_hello(), NEVER_REACHED, "memory://")


def _flask_cors() -> Any:
    from flask_cors import CORS

    app = flask_hello()
    CORS(app, origins=[ORIGIN], methods=["GET", "POST"])
    return app


def _flask_compress() -> Any:
    from flask_compress import Compress

    app = flask_hello()
    app.config.update(COMPRESS_ALGORITHM=["gzip"], COMPRESS_LEVEL=GZIP_LEVEL)
    Compress(app)
    return app


#: bridge's middleware, each wrapping the app alone (the same for both interfaces)
BRIDGE_MIDDLEWARE: dict[str, Callable[[Any], Any]] = {
    "ProxyHeaders": _bridge("ProxyHeaders"),
    "SecurityHeaders": _security_headers,
    "CustomHeaders": _bridge("CustomHeaders", set_response={"cache-control": "no-store"}),
    "RequestBuffering": _bridge("RequestBuffering"),
    # Counts the body as the app reads it, as Starlette's body limit does (its peer).
    "RequestBuffering (stream)": _bridge("RequestBuffering", mode="stream"),
    "RateLimit": _rate_limit,
    "ConcurrencyLimit": _concurrency_limit,
    "CORS": _bridge("CORS", **CORS_OPTIONS),
    "TrustedHost": _bridge("TrustedHost", allowed_hosts=HOSTS),
    "Compression": _bridge("Compression", gzip_level=GZIP_LEVEL),
    "RequestId": _bridge("RequestId"),
    "HTTPSRedirect": _bridge("HTTPSRedirect"),
}

#: ASGI peers: (bridge middleware it is compared with, build the whole app)
ASGI_PEERS: dict[str, tuple[str, Callable[[], Any]]] = {
    "uvicorn ProxyHeadersMiddleware": (
        "ProxyHeaders",
        lambda: _uvicorn_proxy_headers(starlette_hello()),
    ),
    "secure SecureASGIMiddleware": ("SecurityHeaders", lambda: _secure_asgi(starlette_hello())),
    "Starlette RequestBodyLimitMiddleware": (
        "RequestBuffering (stream)",
        lambda: _starlette(
            "starlette.middleware.body_limit",
            "RequestBodyLimitMiddleware",
            max_body_size=10 * 1024 * 1024,
        )(starlette_hello()),
    ),
    "slowapi (memory)": ("RateLimit", _slowapi),
    "Starlette CORSMiddleware": (
        "CORS",
        lambda: _starlette("starlette.middleware.cors", "CORSMiddleware", **CORS_OPTIONS)(
            starlette_hello()
        ),
    ),
    "Starlette TrustedHostMiddleware": (
        "TrustedHost",
        lambda: _starlette(
            "starlette.middleware.trustedhost", "TrustedHostMiddleware", allowed_hosts=HOSTS
        )(starlette_hello()),
    ),
    "Starlette GZipMiddleware": (
        "Compression",
        lambda: _starlette("starlette.middleware.gzip", "GZipMiddleware", compresslevel=GZIP_LEVEL)(
            starlette_hello()
        ),
    ),
    "asgi-correlation-id": (
        "RequestId",
        lambda: _starlette("asgi_correlation_id", "CorrelationIdMiddleware")(starlette_hello()),
    ),
    "Starlette HTTPSRedirectMiddleware": (
        "HTTPSRedirect",
        lambda: _starlette("starlette.middleware.httpsredirect", "HTTPSRedirectMiddleware")(
            starlette_hello()
        ),
    ),
}

#: WSGI peers: (bridge middleware it is compared with, build the whole app)
WSGI_PEERS: dict[str, tuple[str, Callable[[], Any]]] = {
    "werkzeug ProxyFix": ("ProxyHeaders", lambda: _proxy_fix(flask_hello().wsgi_app)),
    "secure SecureWSGIMiddleware": (
        "SecurityHeaders",
        lambda: _secure_wsgi(flask_hello().wsgi_app),
    ),
    "Flask-Limiter (memory)": ("RateLimit", _flask_limiter),
    "flask-cors": ("CORS", _flask_cors),
    "flask-compress": ("Compression", _flask_compress),
}


def _variants() -> dict[str, Callable[[], Any]]:
    variants: dict[str, Callable[[], Any]] = {
        "flask": flask_hello,
        "starlette": starlette_hello,
        "fastapi": fastapi_hello,
        "flask via bridge WsgiToAsgi": _bridge_wsgi_to_asgi,
        "flask via uvicorn's adapter": _uvicorn_wsgi,
        "fastapi via bridge AsgiToWsgi": _bridge_asgi_to_wsgi,
        "fastapi via a2wsgi": _a2wsgi_asgi_to_wsgi,
    }
    for name, wrap in BRIDGE_MIDDLEWARE.items():
        variants[f"starlette + bridge {name}"] = lambda wrap=wrap: wrap(starlette_hello())
        variants[f"flask + bridge {name}"] = lambda wrap=wrap: wrap(flask_hello().wsgi_app)
    for name, (_, build) in ASGI_PEERS.items():
        variants[f"starlette + {name}"] = build
    for name, (_, build) in WSGI_PEERS.items():
        variants[f"flask + {name}"] = build
    return variants


#: variant name -> build the app (called once, in the server process)
VARIANTS = _variants()

if "BENCH_APP" in os.environ:
    app = VARIANTS[os.environ["BENCH_APP"]]()
