"""``ProxyHeaders``: client, scheme, host and root path from trusted proxies' headers.

``_middleware`` is the middleware (options, the trusted peers and the trust
verdict, the plan cache, logging); ``_plan`` is its sans-IO core: the parsing of
forwarded header values and what a set of them makes of a request head.
"""

from bridge.middleware.proxy_headers._middleware import ORIGINAL_KEY, ProxyHeaders
from bridge.middleware.proxy_headers._plan import OriginalRequest

__all__ = ("ORIGINAL_KEY", "OriginalRequest", "ProxyHeaders")
