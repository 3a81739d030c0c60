"""bridge: WSGI <-> ASGI adapters, sync/async helpers and middleware written once for both.

Each public name lives in one module and is re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.__about__ import __version__
from bridge._http.translate import BadRequest

# -- adapters: WSGI app under an ASGI server (bridge.wsgi_to_asgi)
from bridge.wsgi_to_asgi import ClientDisconnected, WsgiToAsgi

# -- adapters: ASGI app under a WSGI server (bridge.asgi_to_wsgi)
from bridge.asgi_to_wsgi import AsgiToWsgi  # isort: skip

# -- sync <-> async helpers (bridge.sync)
from bridge.sync import ThreadSensitiveContext, async_to_sync, sync_to_async  # isort: skip
from bridge.sync import iterate_in_loop, iterate_in_thread  # isort: skip

# -- middleware: core and header middleware (bridge.middleware)
from bridge.middleware.headers import CustomHeaders  # isort: skip
from bridge.middleware.proxy_headers import ProxyHeaders  # isort: skip
from bridge.middleware.security_headers import SecurityHeaders  # isort: skip

# -- middleware: the ones people reach for first (bridge.middleware)
from bridge.middleware.trusted_host import TrustedHost  # isort: skip
from bridge.middleware.https_redirect import HTTPSRedirect  # isort: skip
from bridge.middleware.cors import CORS  # isort: skip
from bridge.middleware.request_id import RequestId, RequestIdFilter  # isort: skip
from bridge.middleware.compression import Compression  # isort: skip

# -- middleware: buffering (bridge.middleware.buffering)
from bridge.buffering import RequestBuffering, RequestBufferingRule, ResponseBuffering  # isort: skip

# -- middleware: rate limiting (bridge.ratelimit)
from bridge.ratelimit import ConcurrencyLimit, MemoryStore, RateLimit  # isort: skip

# -- per-request values, read alike under WSGI and ASGI (bridge.values)
from bridge.values import RequestValues, request_values  # isort: skip

if TYPE_CHECKING:  # imported on first use, see __getattr__ below
    from bridge import testing
    from bridge.ratelimit.redis import RedisStore


def __getattr__(name: str) -> object:
    # RedisStore needs the "redis" extra and bridge.testing imports test helpers:
    # neither is loaded by ``import bridge``.
    if name == "RedisStore":
        from bridge.ratelimit.redis import RedisStore

        return RedisStore
    if name == "Headers":
        from bridge._http.options import warn_deprecated

        warn_deprecated("bridge.Headers is renamed bridge.CustomHeaders")
        return CustomHeaders
    if name == "testing":
        import bridge.testing

        return bridge.testing
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
    "CustomHeaders",
    "ProxyHeaders",
    "SecurityHeaders",
    "testing",
    # -- middleware: the ones people reach for first
    "TrustedHost",
    "HTTPSRedirect",
    "CORS",
    "RequestId",
    "RequestIdFilter",
    "Compression",
    # -- middleware: buffering
    "RequestBuffering",
    "RequestBufferingRule",
    "ResponseBuffering",
    # -- middleware: rate limiting
    "ConcurrencyLimit",
    "MemoryStore",
    "RateLimit",
    "RedisStore",
    # -- per-request values
    "RequestValues",
    "request_values",
)
