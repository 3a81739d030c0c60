"""The peers' configurations the benchmark scripts share, so each is written once.

``secure`` with its default headers and the same headers configured on
bridge's SecurityHeaders; Flask-Limiter and slowapi added to an app the way
their documentation does it, with their rate-limit headers on.
"""

from __future__ import annotations

from typing import Any

from secure import Secure

SECURE = Secure.with_default_headers()

#: The headers secure sends, configured on bridge (override=True, as secure overwrites).
SAME_AS_SECURE: dict[str, Any] = {
    "preset": "none",
    "override": True,
    "hsts": "max-age=31536000; includeSubDomains",
    "csp": SECURE.headers["Content-Security-Policy"],
    "content_type_options": "nosniff",
    "frame_options": "SAMEORIGIN",
    "referrer_policy": "strict-origin-when-cross-origin",
    "permissions_policy": "geolocation=(), microphone=(), camera=()",
    "coop": "same-origin",
    "corp": "same-origin",
}


def with_flask_limiter(app: Any, limit: str, storage_uri: str, **options: Any) -> Any:
    """``app`` (a Flask app) limited by Flask-Limiter to ``limit`` per client address."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage_uri,
        default_limits=[limit],
        headers_enabled=True,
        **options,
    )
    return app


def with_slowapi(app: Any, limit: str, storage_uri: str, **options: Any) -> Any:
    """``app`` (a Starlette app) limited by slowapi's middleware to ``limit`` per client."""
    from slowapi import Limiter
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIMiddleware
    from starlette.responses import PlainTextResponse

    app.state.limiter = Limiter(
        key_func=lambda request: request.client.host,
        default_limits=[limit],
        storage_uri=storage_uri,
        headers_enabled=True,
        **options,
    )
    app.add_exception_handler(RateLimitExceeded, lambda r, e: PlainTextResponse("", 429))
    app.add_middleware(SlowAPIMiddleware)
    return app
