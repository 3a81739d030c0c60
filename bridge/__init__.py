"""bridge: WSGI <-> ASGI adapters, sync/async helpers and middleware written once for both.

Each public name lives in one module and is re-exported here.
"""

from __future__ import annotations

from .__about__ import __version__
from ._translate import BadRequest

# -- adapters: WSGI app under an ASGI server (bridge.wsgi_to_asgi)

# -- adapters: ASGI app under a WSGI server (bridge.asgi_to_wsgi)
from .asgi_to_wsgi import AsgiToWsgi, ClientDisconnected  # isort: skip

# -- sync <-> async helpers (bridge.sync)

# -- middleware: core and header middleware (bridge.middleware)

# -- middleware: buffering (bridge.middleware.buffering)

# -- middleware: rate limiting (bridge.ratelimit)

__all__ = (  # noqa: RUF022 - one section per issue, see the comments
    "BadRequest",
    "__version__",
    # -- adapters: wsgi_to_asgi
    # -- adapters: asgi_to_wsgi
    "AsgiToWsgi",
    "ClientDisconnected",
    # -- sync helpers
    # -- middleware: core and headers
    # -- middleware: buffering
    # -- middleware: rate limiting
)
