"""Pieces both drivers share: running effect generators, logging, fallbacks.

Invariants: a generator is driven until it returns; the result of each
effect (or the exception it raised) goes back into the generator, so a
middleware handles I/O failures in its own code. Nothing here knows which
middleware it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any, Final, TypeVar

from bridge._http.logfields import EventLog
from bridge._http.translate import BadRequest
from bridge.middleware._core.exchange import Effect, Exchange, OutcomeKind, ReadBody, RequestBodyIO
from bridge.middleware._core.heads import Response

__all__ = (
    "INLINE_FLUSH",
    "INTERNAL_ERROR",
    "bad_request",
    "drive_async",
    "drive_sync",
    "failure",
    "log",
    "logger",
)

logger: Final = logging.getLogger("bridge.middleware")
log: Final = EventLog(logger, "middleware")

T = TypeVar("T")

#: What both drivers send when the app or a middleware fails before the head.
INTERNAL_ERROR: Final = Response.error(500)

#: Bytes of a ``response_body`` tail (what its final call returns) the ASGI
#: driver sends from the app's last ``send`` itself; a longer tail is sent by a
#: task next to the app, so the app never waits on a slow client. Up to this
#: size it fits in any server's write buffer (asyncio's high-water mark is
#: 64 KiB), so sending it never waits for the client, and costs no task.
INLINE_FLUSH: Final = 32 * 1024


def drive_sync(steps: Generator[Effect[Any], Any, T], body: RequestBodyIO) -> T:
    """Run ``steps`` to completion with each effect's ``run_sync``."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value, error = effect.run_sync(body), None
        except Exception as exc:
            value, error = None, exc


async def drive_async(steps: Generator[Effect[Any], Any, T], body: RequestBodyIO) -> T:
    """Run ``steps`` to completion awaiting each effect's ``run_async``."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            if type(effect) is ReadBody:  # the one effect per body chunk: one await less
                value, error = await body.read_async(effect.timeout), None
            else:
                value, error = await effect.run_async(body), None
        except Exception as exc:
            value, error = None, exc


def failure(
    who: str, exc: Exception, while_: str, ex: Exchange | None = None, request: object = None
) -> tuple[Response, OutcomeKind]:
    """The response for an exception raised by middleware code, logged once.

    A :class:`BadRequest` (e.g. a header that cannot be translated, found
    when a middleware first reads the headers) is the client's fault: its
    status and one warning line (see :func:`bad_request`). Anything else is a
    bug: 500 and a traceback. The line names ``ex``'s head, else ``request``.
    """
    if isinstance(exc, BadRequest):
        return bad_request(who, exc, ex, request), "responded"
    request = request if ex is None else ex.head
    log.error("failed", request, "raised %s; sent 500", while_, exc_info=exc, middleware=who)
    return INTERNAL_ERROR, "middleware_error"


def bad_request(who: str, exc: BadRequest, ex: Exchange | None, request: object = None) -> Response:
    """The exchange's response for a malformed head; exactly one log line either way."""
    if ex is None or type(ex).bad_request is Exchange.bad_request:
        request = request if ex is None else ex.head
        log.warning("refused", request, "bad request: %s", exc, middleware=who)
        return Response.error(exc.status, str(exc))
    return ex.bad_request(exc)  # an override logs its own line
