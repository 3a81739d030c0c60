"""Starlette / FastAPI's ``add_middleware`` and ASGI servers take bridge's middleware
and adapters, under ``mypy --strict``."""

from __future__ import annotations

import fastapi
import flask

from bridge import ProxyHeaders, RateLimit, SecurityHeaders, WsgiToAsgi


def configure(api: fastapi.FastAPI, legacy: flask.Flask) -> None:
    api.add_middleware(RateLimit, "10/minute", algorithm="gcra")
    api.add_middleware(SecurityHeaders, preset="strict")
    api.add_middleware(ProxyHeaders, trusted=["10.0.0.0/8"], mode="forwarded")
    api.mount("/legacy", WsgiToAsgi(legacy))
    api.add_middleware(SecurityHeaders, preset="strickt")  # type: ignore[arg-type]
