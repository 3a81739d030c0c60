"""``ResponseBuffering``: hold a response, then send it with a Content-Length.

Theory of operation
-------------------
The decision is sans-IO (:class:`ResponsePlan` in ``_response_plan``, over
:func:`may_buffer` and :class:`ResponseCollector`); the two drivers
(``_response_asgi``, ``_response_wsgi``) only move bytes. For each
response the plan sees the head first and decides whether to buffer (never a
HEAD, 1xx/204/304, ``text/event-stream``, ``X-Accel-Buffering: no``, or what
the ``bypass`` rule refuses). While buffering it holds every chunk; when the
app has finished, the head goes out with the real Content-Length and the held
body follows. If the body crosses ``max_size`` (``overflow="stream"``) or
``max_size + max_file_size`` (``overflow="file"``), or the disk refuses the
file, the plan stops buffering: the head goes out as the app gave it, then the
held chunks, then the rest as it comes ("stream once over").

Releasing the app before a slow client has read everything is the point:

* ASGI: the app's final ``send`` returns as soon as the body is held; the held
  body is sent by a task next to the app, so an app that keeps running after
  its response (Starlette background tasks, a WSGI app's thread under
  WsgiToAsgi) is not held back by the client, nor the client by it. A body of
  at most ``INLINE_FLUSH`` (32 KiB) is sent from that last ``send`` instead:
  it fits in the server's write buffer, so that never waits for the client.
* WSGI: the app's iterable is exhausted and closed (its ``close()`` releases
  what it holds) before the server starts writing the held body.

An app that fails while its response is held is answered 500 (one log line),
the same under both interfaces. The spool is closed on every path.

This middleware has its own two small drivers instead of the core's response
hooks: the core calls ``Exchange.response_body`` before showing the response
head, and sends the last held chunks from inside the app's final ``send``
(ASGI) or before ``close()`` (WSGI), which would keep the app waiting on the
client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from bridge._types import Environ, StartResponse
from bridge.middleware import Interface, detect_interface

from ._policy import BypassRule, Overflow
from ._response_asgi import serve_asgi
from ._response_plan import ResponseConfig
from ._response_wsgi import serve_wsgi

__all__ = ("ResponseBuffering",)


class ResponseBuffering:
    """Hold responses until the app is done, then send them with a Content-Length.

    ``ResponseBuffering(app, **options)`` returns an app of the same interface
    as ``app`` (WSGI or ASGI). Options (keyword-only):

    * ``max_size`` (default ``"1m"``): how much of a response is held in memory.
    * ``overflow`` (default ``"file"``): past ``max_size``, ``"file"`` keeps
      holding in an anonymous temporary file (up to ``max_file_size``);
      ``"stream"`` stops holding and streams the rest.
    * ``max_file_size`` (default ``"1g"``): past ``max_size + max_file_size``
      the rest is streamed. nginx: ``proxy_max_temp_file_size``.
    * ``spool_dir`` (default: the system temporary directory).
    * ``bypass``: a function ``(method, status, headers) -> bool``; True streams
      that response. ``text/event-stream``, ``X-Accel-Buffering: no``, HEAD
      requests and 1xx/204/304 responses are never held.
    * ``interface``: ``"wsgi"`` or ``"asgi"`` to override detection.

    .. versionadded:: 0.1
    """

    app: Any
    config: ResponseConfig
    interface: Interface

    def __new__(cls, app: Any = None, **options: Any) -> ResponseBuffering:
        interface = options.get("interface") or detect_interface(app)
        if interface not in ("wsgi", "asgi"):
            raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        variant = _WsgiResponseBuffering if interface == "wsgi" else _AsgiResponseBuffering
        return object.__new__(variant)

    def __init__(
        self,
        app: Any,
        *,
        max_size: int | str = "1m",
        overflow: Overflow = "file",
        max_file_size: int | str = "1g",
        spool_dir: str | os.PathLike[str] | None = None,
        bypass: BypassRule | None = None,
        interface: Interface | None = None,
    ) -> None:
        self.app = app
        self.config = ResponseConfig(
            max_size=max_size,
            overflow=overflow,
            max_file_size=max_file_size,
            spool_dir=spool_dir,
            bypass=bypass,
        )

    def __call__(self, *args: Any) -> Any:
        # Replaced by the WSGI or ASGI variant that __new__ picks.
        raise TypeError("ResponseBuffering was not created through its class")

    def __repr__(self) -> str:
        return f"<ResponseBuffering ({self.interface}) around {self.app!r}>"


class _AsgiResponseBuffering(ResponseBuffering):
    interface = "asgi"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await serve_asgi(self.app, self.config, scope, receive, send)


class _WsgiResponseBuffering(ResponseBuffering):
    interface = "wsgi"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return serve_wsgi(self.app, self.config, environ, start_response)
