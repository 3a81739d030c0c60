"""``WsgiToAsgi``: a WSGI application served by an ASGI server.

One request, followed through the modules a reader opens (in order):

* ``_adapter`` -- the public :class:`WsgiToAsgi` (options, ``lifespan``, ``websocket``);
  each ``http`` request becomes one ``WsgiToAsgiRequest``.
* ``_request`` -- :class:`WsgiToAsgiRequest`, the event-loop side: builds the environ,
  runs the app in a worker thread, sends what it produces, watches for a disconnect.
* ``_app_run`` -- the worker-thread side: :class:`AppRun` calls the app, iterates and
  always closes its response; :class:`ResponseState` holds the PEP 3333 response rules.
* ``bridge._http.wsgi_input`` -- ``wsgi.input``, the request body as the app reads it.

The thread hand-off (``bridge._loop.crossing``) and the bounded queues between thread
and loop (``bridge._loop.handoff``) are shared machinery with ``bridge.sync``.
"""

from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError
from bridge.wsgi_to_asgi._adapter import DEFAULT_BUFFER_SIZE, WsgiToAsgi, complete_lifespan
from bridge.wsgi_to_asgi._app_run import FileWrapper

__all__ = (
    "DEFAULT_BUFFER_SIZE",
    "ClientDisconnected",
    "FileWrapper",
    "RequestBodyError",
    "WsgiToAsgi",
    "complete_lifespan",
)
