"""``ProxyHeaders``: client, scheme, host and root path from trusted proxies' headers.

``_middleware`` is the middleware (trust check, plan cache, applying a plan to
the head); ``_plan`` decides what a set of forwarded header texts says; and
``_forwarded`` parses the individual header values.
"""

from bridge.middleware.proxy_headers._middleware import ORIGINAL_KEY, ProxyHeaders
from bridge.middleware.proxy_headers._plan import OriginalRequest

__all__ = ("ORIGINAL_KEY", "OriginalRequest", "ProxyHeaders")
