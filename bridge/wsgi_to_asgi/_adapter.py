"""``WsgiToAsgi``: run a WSGI (PEP 3333) application under any ASGI 3 server.

This module holds the public class and the scopes other than ``http``; each HTTP
request is a :class:`bridge.wsgi_to_asgi._request.WsgiToAsgiRequest` (its docstring
explains how the thread and the event loop share the work), and the app's side of it
runs in :mod:`bridge.wsgi_to_asgi._app_run`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, cast

import anyio
from asgiref.typing import HTTPScope

from bridge._http.apps import wrong_app_message
from bridge._http.logfields import EventLog
from bridge._http.translate import DEFAULT_MAX_HEADER_LINES
from bridge._http.types import WsgiApp
from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError
from bridge.wsgi_to_asgi._app_run import FileWrapper
from bridge.wsgi_to_asgi._request import Receive, Send, WsgiToAsgiRequest

__all__ = (
    "DEFAULT_BUFFER_SIZE",
    "ClientDisconnected",
    "FileWrapper",
    "RequestBodyError",
    "WsgiToAsgi",
)

logger = logging.getLogger("bridge.wsgi_to_asgi")
log = EventLog(logger, "WsgiToAsgi")

#: Bytes of response body that may wait between the worker thread and the event loop.
DEFAULT_BUFFER_SIZE: Final = 256 * 1024
#: Bytes of request body that may wait between the event loop and the worker thread.
#: Each time the app's reads empty this queue, the thread waits for the loop to refill
#: it: a round trip, tens of microseconds on an idle machine and milliseconds on a busy
#: one. At 1 MiB an upload of up to 1 MiB crosses in one hand-off.
_DEFAULT_REQUEST_BUFFER_SIZE: Final = 1024 * 1024

# The public signature uses the loose mappings servers and frameworks (Starlette,
# httpx, uvicorn) type ASGI apps with, so WsgiToAsgi type-checks wherever an ASGI
# app is expected; inside, the scope is read as asgiref's TypedDicts.
AnyScope = MutableMapping[str, Any]
AnyReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
AnySend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WsgiToAsgi:
    """Wrap a WSGI application as an ASGI 3 application.

    ``http`` requests run the app in worker threads with a streamed
    ``wsgi.input`` and a streamed, backpressured response; ``lifespan``
    completes at once (WSGI has no lifespan); a ``websocket`` connection is
    closed before it is accepted (WSGI has no websockets), which servers
    answer with HTTP 403.

    Options:

    * ``limiter`` -- an ``anyio.CapacityLimiter`` bounding how many requests run
      the app at once (each holds a token while its thread call runs). Default
      ``None``: anyio's default thread limiter of the running event loop (40
      tokens, shared with ``anyio.to_thread`` and ``sync_to_async`` callers).
    * ``max_header_lines`` -- requests with more header lines are answered
      with 431. Default 100.
    * ``allow_underscores_in_headers`` -- keep request headers whose names
      contain ``_`` (dropped by default, because ``X_User`` would otherwise
      spoof ``X-User`` in the environ). Default ``False``.
    * ``multiprocess`` -- the value of ``wsgi.multiprocess``: set it when the
      server runs several worker processes. Default ``False``.
    * ``buffer_size`` -- bytes of request or response body that may wait
      between the event loop and the worker thread, per direction and
      request. Default ``None``: 1 MiB of request body, 256 KiB of response
      body.
    * ``prefetch_size`` -- a request body whose Content-Length is at most this
      many bytes is received whole by the event loop before the app starts: no
      worker thread waits on a slow client meanwhile, and the app reads it
      without a hand-off. Longer bodies, and bodies of unknown length, stream
      through the request queue as the app reads them. Default ``None``: the
      request queue's bound (1 MiB, or ``buffer_size`` when given), so memory
      per request stays within the same bound. ``0``: stream every body (a
      WSGI-side middleware then sees a slow body arrive piece by piece, for
      its own body timeouts).
    * ``response_timeout`` -- seconds the app may take to start its response
      (counted from the request's arrival, renewed by each request-body chunk
      the app takes) before the client gets a 504 and one ERROR log line; the
      app's thread cannot be stopped, so it keeps its limiter token until the
      app returns. Default ``None``: no limit.

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
       ``buffer_size`` defaults to ``None``: 1 MiB for the request body (was
       256 KiB), so a 1 MiB upload costs one thread hand-off instead of four.
    .. versionchanged:: 0.1
       ``prefetch_size``: bodies up to the request queue's bound are received
       before the app starts (they streamed, with a body pump task beside the
       app); ``prefetch_size=0`` keeps streaming them.
    .. versionchanged:: 0.1
       The app runs in bridge's own worker threads (the ``sync_to_async``
       hand-off) instead of ``anyio.to_thread.run_sync``; same limiter rules.
    """

    # Learned per instance, not configured: whether the app's last response streamed
    # (see WsgiToAsgiRequest._run_without_task_group). Races between requests are harmless.
    _expect_streaming = False

    def __init__(
        self,
        app: WsgiApp,
        *,
        limiter: anyio.CapacityLimiter | None = None,
        max_header_lines: int = DEFAULT_MAX_HEADER_LINES,
        allow_underscores_in_headers: bool = False,
        multiprocess: bool = False,
        buffer_size: int | None = None,
        prefetch_size: int | None = None,
        response_timeout: float | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"WsgiToAsgi needs a WSGI application (a callable), got {app!r}")
        wrong_app = wrong_app_message("WsgiToAsgi", app)
        if wrong_app is not None:
            raise TypeError(wrong_app)
        if limiter is not None and not isinstance(limiter, anyio.CapacityLimiter):
            raise TypeError(f"limiter must be an anyio.CapacityLimiter or None, got {limiter!r}")
        sizes: list[tuple[str, object]] = [("max_header_lines", max_header_lines)]
        if buffer_size is not None:
            sizes.append(("buffer_size", buffer_size))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if prefetch_size is not None and (
            isinstance(prefetch_size, bool)
            or not isinstance(prefetch_size, int)
            or prefetch_size < 0
        ):
            raise ValueError(
                "prefetch_size must be an int of bytes (0: stream every body), "
                f"got {prefetch_size!r}"
            )
        if response_timeout is not None:
            _check_seconds("response_timeout", response_timeout)
        self.app = app
        self.response_timeout = response_timeout
        self.limiter = limiter
        self.max_header_lines = max_header_lines
        self.allow_underscores_in_headers = allow_underscores_in_headers
        self.multiprocess = multiprocess
        #: The bound of each response's queue, and of each request body's queue.
        self.buffer_size = buffer_size or DEFAULT_BUFFER_SIZE
        self.request_buffer_size = buffer_size or _DEFAULT_REQUEST_BUFFER_SIZE
        #: Bodies declared at most this long are received before the app starts.
        self.prefetch_size = self.request_buffer_size if prefetch_size is None else prefetch_size

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        kind = scope["type"]
        recv = cast("Receive", receive)
        if kind == "http":
            await WsgiToAsgiRequest(self, cast("HTTPScope", scope), recv, cast("Send", send)).run()
        elif kind == "lifespan":
            await complete_lifespan(recv, cast("Send", send))
        elif kind == "websocket":
            await _close_websocket(scope, recv, cast("Send", send))
        else:
            raise ValueError(f"WsgiToAsgi cannot serve ASGI scope type {kind!r}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"WsgiToAsgi({name}=...) must be a number of seconds or None, got {value!r}"
        )
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"WsgiToAsgi({name}=...) must be positive and finite, got {value!r}")


async def complete_lifespan(receive: Receive, send: Send) -> None:
    """Answer lifespan startup and shutdown as complete (an app with nothing to start)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _close_websocket(scope: Any, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        log.warning("refused", scope, "a WSGI application cannot accept websockets; closed")
        await send({"type": "websocket.close", "code": 1000})
