"""``AsgiToWsgi``: an ASGI application served by a WSGI server.

The adapter (``_adapter``) runs each request as one :class:`AsgiToWsgiRequest`
(``_request``) between the WSGI thread and the app's task on the shared
background loop; ``_response`` holds the pure ASGI -> WSGI response rules and
``_lifespan`` the once-per-process lifespan.
"""

from bridge._http.wsgi_input import ClientDisconnected
from bridge.asgi_to_wsgi._adapter import AsgiToWsgi

__all__ = ("AsgiToWsgi", "ClientDisconnected")
