"""The WSGI site the AsgiToWsgi server tests serve: real ASGI frameworks under a dispatcher.

``gunicorn tests.apps.asgi_wsgi_site:application`` (or waitress) serves:

* ``/fastapi/...``   FastAPI (lifespan with state)
* ``/starlette/...`` Starlette (lifespan with state, GZip middleware)
* ``/django/...``    Django's ASGIHandler (no lifespan: ``"auto"`` falls back)
* ``/plain/...``     a plain ASGI app (the endless download and its status)

each through its own ``AsgiToWsgi`` (on the loop ``BRIDGE_TEST_BACKEND`` names,
default asyncio; Django always on asyncio) inside ``wsgiref.validate.validator``,
mounted with werkzeug's ``DispatcherMiddleware`` (so ``root_path`` is the mount
point). With ``BRIDGE_TEST_WARM_IN_PARENT=1`` the importing process serves one
request at import time: under ``gunicorn --preload`` the master then has a
running background loop and a completed lifespan startup before it forks. With
``BRIDGE_TEST_SIGTERM_EXITS=1`` SIGTERM becomes a normal exit (the waitress
recipe in docs/asgi_to_wsgi.md), so lifespan shutdown runs.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bridge import AsgiToWsgi
from tests.apps import django_asgi_app
from tests.apps.asgi_frameworks import endless, fastapi_app, starlette_app

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication


def not_found(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no app mounted here\n"]


def validated(adapter: AsgiToWsgi) -> WSGIApplication:
    return validator(cast("WSGIApplication", adapter))


BACKEND = os.environ.get("BRIDGE_TEST_BACKEND", "asyncio")
fastapi = AsgiToWsgi(fastapi_app, backend=BACKEND)
starlette = AsgiToWsgi(starlette_app, backend=BACKEND)
django = AsgiToWsgi(django_asgi_app.asgi)  # Django's handler calls asyncio directly
plain = AsgiToWsgi(endless, lifespan="off", backend=BACKEND)

application = DispatcherMiddleware(
    cast("WSGIApplication", not_found),
    {
        "/fastapi": validated(fastapi),
        "/starlette": validated(starlette),
        "/django": validated(django),
        "/plain": validated(plain),
    },
)


def _warm_up() -> None:
    environ: dict[str, Any] = {"PATH_INFO": "/fastapi/pid", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    result = application(environ, lambda status, headers, exc_info=None: lambda data: None)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    print(f"warmed up in {os.getpid()}: {body.decode()}", file=sys.stderr, flush=True)


if os.environ.get("BRIDGE_TEST_WARM_IN_PARENT") == "1":
    _warm_up()


if os.environ.get("BRIDGE_TEST_SIGTERM_EXITS") == "1":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
