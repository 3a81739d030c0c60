"""``ResponseBuffering``: hold a response, then send it with a Content-Length.

Theory of operation
-------------------
The decision is sans-IO (:class:`ResponsePlan` in ``_response_plan``, over
:func:`may_buffer` and :class:`ResponseCollector`); the two drivers
(the middleware core's drivers) only move bytes. For each
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

It runs on the middleware core (``_BufferingExchange``): ``response_start``
sees the head and decides, ``response_body`` holds the chunks and returns
them all from its final call, which the core sends after releasing the app;
``response`` puts the real Content-Length on the head; ``finish`` closes the
spool.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from bridge.buffering._policy import BypassRule, Overflow
from bridge.buffering._response_plan import ResponseConfig, ResponsePlan
from bridge.middleware import (
    Exchange,
    Interface,
    Middleware,
    Outcome,
    RequestHead,
    ResponseHead,
)

__all__ = ("ResponseBuffering",)


class ResponseBuffering(Middleware):
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
    * ``interface``, ``clock``: see :class:`bridge.middleware.Middleware`.

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
       Runs on the middleware core (its own drivers are gone); ``clock`` accepted.
    """

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.config = ResponseConfig(
            max_size=max_size,
            overflow=overflow,
            max_file_size=max_file_size,
            spool_dir=spool_dir,
            bypass=bypass,
        )

    def exchange(self, head: RequestHead, now: float) -> _BufferingExchange:
        return _BufferingExchange(head, now, ResponsePlan(self.config, head))


class _BufferingExchange(Exchange):
    """One response: held (``holding``) until its end, or passed on as it comes."""

    __slots__ = ("ended", "holding", "plan")

    def __init__(self, head: RequestHead, now: float, plan: ResponsePlan) -> None:
        super().__init__(head, now)
        self.plan = plan
        self.holding = False
        self.ended = False  # the whole body is held: the head gets its real length

    def response_start(self, head: ResponseHead) -> None:
        # Trailers follow the body; holding it would let them overtake it.
        self.holding = not head.trailers and self.plan.start(head.status, list(head.headers))

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        if not self.holding:
            return (chunk,)
        if chunk and not self.plan.hold(chunk):
            self.holding = False  # stream once over: what was held, then the rest as it comes
            return itertools.chain(self.plan.held(), (chunk,))
        if more:
            return ()
        self.ended = True
        return self.plan.held()  # the core sends it after releasing the app

    def response(self, head: ResponseHead) -> ResponseHead:
        if self.holding and self.ended:
            return head.replace(headers=tuple(self.plan.final_headers()))
        # Not held, or holding stopped (a limit, the disk, a message that cannot be held).
        self.holding = False
        return head

    def finish(self, outcome: Outcome) -> None:
        self.plan.close()
