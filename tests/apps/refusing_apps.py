"""WSGI apps that refuse an upload without reading it, served through WsgiToAsgi, for
tests/test_wsgi_to_asgi_servers.py (issue 13 item 16: nothing may stay behind).

* ``refuse_401``: answers 401 to any POST without touching ``wsgi.input``.
* ``buffered_413``: ``WsgiToAsgi(RequestBuffering(app, max_body_size="1m"))``, whose
  WSGI-side RequestBuffering answers 413 to a larger declared body before reading it.

Both answer ``GET /pid`` with the server process's pid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from wsgiref.types import StartResponse
from wsgiref.validate import validator

from bridge import RequestBuffering, WsgiToAsgi
from bridge._http.types import Environ


def refusing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"nope"]


refuse_401 = WsgiToAsgi(validator(refusing))
buffered_413 = WsgiToAsgi(RequestBuffering(validator(refusing), max_body_size="1m"))
