"""Run an ASGI app (FastAPI, Starlette, Django's asgi.py) under any WSGI server.

``AsgiToWsgi(asgi_app)`` is a WSGI application. Each request is translated
with the shared rules of :mod:`bridge._http.translate`, the app runs as a task on
the process-wide background loop (:mod:`bridge._loop.portal`), and the WSGI thread
streams its response; see :mod:`bridge.asgi_to_wsgi._request` for the hand-off and
:mod:`bridge.asgi_to_wsgi._lifespan` for startup and shutdown.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import math
import os
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final, cast

from asgiref.compatibility import guarantee_single_callable
from asgiref.typing import ASGI3Application, ASGIApplication, HTTPScope

from bridge._http.apps import wrong_app_message
from bridge._http.logfields import EventLog
from bridge._http.translate import BadRequest, scope_from_environ
from bridge._http.types import Environ, StartResponse
from bridge._loop.handle import loop_handle
from bridge.asgi_to_wsgi._lifespan import Lifespan, LifespanMode
from bridge.asgi_to_wsgi._request import (
    AsgiToWsgiRequest,
    ClientDisconnected,
    Options,
    respond_with_error,
)
from bridge.asgi_to_wsgi._response import BodyPlan, plan_body

__all__ = ("AsgiToWsgi", "ClientDisconnected")

logger: Final = logging.getLogger("bridge.asgi_to_wsgi")
log: Final = EventLog(logger, "AsgiToWsgi")

_BACKEND_MODULES: Final = {
    "asyncio": None,
    "asyncio+uvloop": "uvloop",
    "trio": "trio",
}
_open_adapters: weakref.WeakSet[AsgiToWsgi] = weakref.WeakSet()


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = "an int" if integer else "a number of seconds"
        raise TypeError(f"AsgiToWsgi({name}=...) must be {wanted}, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"AsgiToWsgi({name}=...) must be positive and finite, got {value!r}")


class AsgiToWsgi:
    """A WSGI application that runs an ASGI app on a shared background event loop.

    Options (all keyword-only):

    ``lifespan`` (default ``"auto"``)
        ``"on"``: run the ASGI lifespan protocol; a failed startup makes every
        request answer 500. ``"auto"``: the same, but an app that raises or
        returns during startup is taken not to support lifespan, as servers do.
        ``"off"``: never send lifespan events. Startup runs once per process
        before the first request; ``scope["state"]`` from startup is copied
        (shallowly) into every request scope; shutdown runs at :meth:`close`
        or interpreter exit.
    ``backend`` (default ``"asyncio"``)
        ``"asyncio"``, ``"asyncio+uvloop"`` or ``"trio"``. One loop per backend
        per process, shared by every adapter (and by ``bridge``'s sync helpers).
    ``chunk_size`` (default 64 KiB)
        Largest request-body chunk read from ``wsgi.input`` for one ``receive()``;
        also the block size given to ``wsgi.file_wrapper``.
    ``prefetch_size`` (default 1 MiB)
        A body with a Content-Length up to this size is read by the WSGI thread
        before the app starts (still delivered in ``chunk_size`` pieces), so
        ``receive()`` costs no thread hand-off. Larger bodies stream on demand.
    ``buffer_size`` (default 256 KiB)
        Response bytes that may wait for the WSGI server before the app's
        ``send()`` waits (backpressure).
    ``response_timeout`` (default 60 s)
        How long the WSGI thread waits for the app to start its response
        (measured from the last sign of life, such as a body read) before it
        answers 504 and cancels the app.
    ``disconnect_grace`` (default 2 s)
        After the WSGI server closes a response early (the client went away),
        the app gets ``http.disconnect`` and is cancelled this much later.
    ``startup_timeout`` / ``shutdown_timeout`` (default 60 s / 30 s)
        Bounds on lifespan startup (requests waiting longer get 503) and on
        shutdown, including the wait for requests' background work.

    Misconfiguration raises ``TypeError`` or ``ValueError`` here, at construction.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: ASGIApplication | Any,
        *,
        lifespan: LifespanMode = "auto",
        backend: str = "asyncio",
        chunk_size: int = 64 * 1024,
        prefetch_size: int = 1024 * 1024,
        buffer_size: int = 256 * 1024,
        response_timeout: float = 60.0,
        disconnect_grace: float = 2.0,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if not callable(app):
            raise TypeError(f"AsgiToWsgi needs an ASGI application (a callable), got {app!r}")
        wrong_app = wrong_app_message("AsgiToWsgi", app)
        if wrong_app is not None:
            raise TypeError(wrong_app)
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(
                f"AsgiToWsgi(lifespan=...) must be 'auto', 'on' or 'off', not {lifespan!r}"
            )
        _check_backend(backend)
        _positive("chunk_size", chunk_size, integer=True)
        _positive("buffer_size", buffer_size, integer=True)
        _positive("prefetch_size", prefetch_size, integer=True)
        for name, value in (
            ("response_timeout", response_timeout),
            ("disconnect_grace", disconnect_grace),
            ("startup_timeout", startup_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            _positive(name, value)
        self.app: ASGI3Application = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
        self.backend = "asyncio+uvloop" if backend == "uvloop" else backend
        self._options = Options(
            chunk_size, prefetch_size, buffer_size, response_timeout, disconnect_grace
        )
        self._shutdown_timeout = shutdown_timeout
        self._lifespan = Lifespan(
            self.app,
            mode=lifespan,
            backend=self.backend,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self._running: set[AsgiToWsgiRequest] = set()
        self._pid = os.getpid()
        _open_adapters.add(self)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            scope = scope_from_environ(environ)
            plan = plan_body(environ)
        except BadRequest as exc:
            log.warning("refused", environ, "%s; sent %d", exc, exc.status)
            return respond_with_error(start_response, exc.status, detail=str(exc))
        blocked = self._lifespan.ensure_started()
        if blocked is not None:
            log.error("failed", scope, "%s; sent %d", blocked[1], blocked[0])
            return respond_with_error(start_response, blocked[0])
        self._complete_scope(scope, environ)
        prefetched = _prefetch_body(environ, plan, self._options)
        if isinstance(prefetched, str):
            log.warning("refused", scope, "%s; sent 400", prefetched)
            return respond_with_error(start_response, 400)
        messages, read = prefetched
        remaining = None if plan.length is None else plan.length - read
        handle = loop_handle(self.backend)
        request = AsgiToWsgiRequest(self._options, handle, scope, environ, remaining, messages)
        # _running keeps the request, and so its task (asyncio holds tasks weakly).
        self._running.add(request)
        request.handle.spawn(request.run, self.app, self._running)
        return request.respond(start_response)  # type: ignore[no-any-return]

    def _complete_scope(self, scope: HTTPScope, environ: Environ) -> None:
        scope["state"] = dict(self._lifespan.state)
        # Per-request values of WSGI-side middleware ("bridge.csp_nonce", ...) reach the
        # ASGI app under the same keys (bridge.request_values reads them there).
        if _may_hold_bridge_keys(environ):
            values = [(key, value) for key, value in environ.items() if key[:7] == "bridge."]
            cast("dict[str, Any]", scope).update(values)
        if "wsgi.file_wrapper" in environ:
            extensions = scope.get("extensions")
            if extensions is not None:
                extensions["http.response.pathsend"] = {}

    def close(self) -> None:
        """Let running requests finish their background work, then run lifespan shutdown.

        Bounded by ``shutdown_timeout``: requests still running then are
        cancelled. Safe to call more than once; also runs at interpreter exit.
        """
        _open_adapters.discard(self)
        if self._pid == os.getpid():
            self._drain_running()
        self._lifespan.shutdown()

    def _drain_running(self) -> None:
        deadline = time.monotonic() + self._shutdown_timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.01)
        for request in list(self._running):
            log.error("cancelled", request.scope, "still running at shutdown")
            request.handle.call_soon(request.cancel)

    def __enter__(self) -> AsgiToWsgi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_backend(backend: str) -> None:
    name = "asyncio+uvloop" if backend == "uvloop" else backend
    if name not in _BACKEND_MODULES:
        choices = ", ".join(repr(choice) for choice in _BACKEND_MODULES)
        raise ValueError(f"AsgiToWsgi(backend=...) must be one of {choices}, not {backend!r}")
    module = _BACKEND_MODULES[name]
    if module is not None and importlib.util.find_spec(module) is None:
        raise ValueError(f"AsgiToWsgi(backend={backend!r}) needs {module}: pip install {module}")


def _may_hold_bridge_keys(environ: Environ) -> bool:
    """False only when no key of ``environ`` starts with ``bridge.``.

    Most requests carry none: one search of the joined keys (in C) answers that
    faster than a look at each key; a key merely containing ``bridge.`` says True.
    """
    try:
        return "bridge." in "\n".join(environ)
    except TypeError:  # a key that is not a str (outside PEP 3333): look at each key
        return True


def _request_message(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def _prefetch_body(environ: Environ, plan: BodyPlan, options: Options) -> Any:
    """Read a small body before dispatch, so the app's receive() needs no hand-off.

    Returns ``(messages in reverse order, bytes read)``, or a ``str`` naming
    why the body is unusable. Bodies longer than ``prefetch_size`` (or of
    unknown length, beyond their first chunk) are left for streaming.
    """
    if plan.empty:
        return [_request_message(b"", False)], 0
    stream = environ["wsgi.input"]
    try:
        if plan.length is None:
            data = stream.read(options.chunk_size)
            return [_request_message(data, bool(data))], len(data)
        if plan.length > options.prefetch_size:
            return [], 0
        messages: list[dict[str, Any]] = []
        missing = plan.length
        while missing:
            part = stream.read(min(missing, options.chunk_size))
            if not part:
                return f"the request body ended {missing} bytes early"
            missing -= len(part)
            messages.append(_request_message(part, missing > 0))
    except Exception as exc:
        return f"reading the request body failed: {type(exc).__name__}: {exc}"
    messages.reverse()
    return messages, plan.length


def _forget_parent_requests() -> None:
    """In a forked child, ``close()`` waits for this process's requests only.

    The parent's requests never finish here; forgetting them (and taking the
    child's pid) lets ``close()`` wait for the child's own background work.
    """
    pid = os.getpid()
    for adapter in list(_open_adapters):
        # Kept, never finalised here: their tasks belong to the parent's loop.
        _parent_requests.append(adapter._running)
        adapter._running = set()
        adapter._pid = pid


_parent_requests: list[set[AsgiToWsgiRequest]] = []


os.register_at_fork(after_in_child=_forget_parent_requests)


def _close_all_at_exit() -> None:
    for adapter in list(_open_adapters):
        adapter.close()


# Registered after bridge._loop.portal's handler (imported above), so it runs first:
# lifespan shutdown needs the loop that the portal handler stops.
atexit.register(_close_all_at_exit)
