"""``AsgiToWsgi``: an ASGI application served by a WSGI server.

One request, followed through the modules a reader opens (in order):

* ``_adapter`` -- the public :class:`AsgiToWsgi` (options, the request body read
  ahead, dispatch to the shared background loop, ``close()``).
* ``_request`` -- :class:`AsgiToWsgiRequest`, shared by the WSGI thread and the app's
  task: ``receive``/``send`` on the loop, the response iterable in the thread.
* ``_response`` -- the pure ASGI -> WSGI response rules (status line, headers, body plan).
* ``_lifespan`` -- the ASGI lifespan, run once per process before the first request.

The background loop and its thread-safe handle are ``bridge._loop.portal`` and
``bridge._loop.handle``, shared with ``bridge.async_to_sync``.
"""

from bridge._http.wsgi_input import ClientDisconnected
from bridge.asgi_to_wsgi._adapter import AsgiToWsgi

__all__ = ("AsgiToWsgi", "ClientDisconnected")
