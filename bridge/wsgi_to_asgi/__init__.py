"""``WsgiToAsgi``: a WSGI application served by an ASGI server.

The adapter (``_adapter``) hands each request to a :class:`WsgiToAsgiRequest`
on the event loop (``_request``), which runs the app in a worker thread
(``_app_run``: the call, the iteration and the PEP 3333 response rules); the
app reads the body through ``bridge._http.wsgi_input``.
"""

from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError
from bridge.wsgi_to_asgi._adapter import DEFAULT_BUFFER_SIZE, WsgiToAsgi, complete_lifespan
from bridge.wsgi_to_asgi._response import FileWrapper

__all__ = (
    "DEFAULT_BUFFER_SIZE",
    "ClientDisconnected",
    "FileWrapper",
    "RequestBodyError",
    "WsgiToAsgi",
    "complete_lifespan",
)
