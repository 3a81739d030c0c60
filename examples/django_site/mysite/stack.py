"""The middleware stack of both entry points: one configuration for ASGI and WSGI.

The first layer sees the request first. Each class detects whether it wraps a WSGI or an
ASGI application, and answers byte for byte the same under both.
"""

from __future__ import annotations

from typing import Any

from bridge import ProxyHeaders, RateLimit, RequestBuffering, SecurityHeaders
from bridge.middleware import Layer, stack

LAYERS: list[Layer] = [
    # nginx on this machine sets X-Forwarded-For / X-Forwarded-Proto (see docs/guides/nginx.md)
    (ProxyHeaders, {"trusted": ["127.0.0.1"]}),
    (RateLimit, {"limit": "20/second burst 40"}),
    (RequestBuffering, {"max_body_size": "1m", "body_timeout": 30}),
    (SecurityHeaders, {"preset": "basic"}),
]


def wrap(application: Any) -> Any:
    """``application`` (Django's WSGI or ASGI handler) inside ``LAYERS``."""
    return stack(application, *LAYERS)
