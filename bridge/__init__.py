"""bridge: WSGI <-> ASGI adapters, sync/async helpers and middleware written once for both.

Each public name lives in one module and is re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .__about__ import __version__
from ._translate import BadRequest

# -- adapters: WSGI app under an ASGI server (bridge.wsgi_to_asgi)
from .wsgi_to_asgi import ClientDisconnected, WsgiToAsgi

# -- adapters: ASGI app under a WSGI server (bridge.asgi_to_wsgi)
from .asgi_to_wsgi import AsgiToWsgi  # isort: skip

# -- sync <-> async helpers (bridge.sync)
from .sync import ThreadSensitiveContext, async_to_sync, sync_to_async  # isort: skip
from .sync import iterate_in_loop, iterate_in_thread  # isort: skip

# -- middleware: core and header middleware (bridge.middleware)
from . import testing  # isort: skip
from .middleware.headers import Headers  # isort: skip
from .middleware.proxy_headers import ProxyHeaders  # isort: skip
from .middleware.security_headers import SecurityHeaders  # isort: skip

# -- middleware: buffering (bridge.middleware.buffering)
from .buffering import RequestBuffering, RequestBufferingRule, ResponseBuffering  # isort: skip

# -- middleware: rate limiting (bridge.ratelimit)
from .ratelimit import ConcurrencyLimit, MemoryStore, RateLimit  # isort: skip

if TYPE_CHECKING:  # RedisStore needs the "redis" extra: imported on first use, see below
    from .ratelimit.redis import RedisStore


def __getattr__(name: str) -> object:
    if name == "RedisStore":
        from .ratelimit.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "BadRequest",
    "__version__",
    # -- adapters: wsgi_to_asgi
    "ClientDisconnected",
    "WsgiToAsgi",
    # -- adapters: asgi_to_wsgi
    "AsgiToWsgi",
    # -- sync helpers
    "ThreadSensitiveContext",
    "async_to_sync",
    "iterate_in_loop",
    "iterate_in_thread",
    "sync_to_async",
    # -- middleware: core and headers
    "Headers",
    "ProxyHeaders",
    "SecurityHeaders",
    "testing",
    # -- middleware: buffering
    "RequestBuffering",
    "RequestBufferingRule",
    "ResponseBuffering",
    # -- middleware: rate limiting
    "ConcurrencyLimit",
    "MemoryStore",
    "RateLimit",
    "RedisStore",
)
