"""``WsgiToAsgi``: run a WSGI (PEP 3333) application under any ASGI 3 server.

Theory of operation
-------------------
Each ``http`` request is one :class:`_Exchange`. The event loop reads the
first body message before anything else. When that message completes the body
(the common case), the app runs in ONE worker-thread hand-off: the thread
calls the app and collects its response messages (a list or tuple response
whole; an iterator up to its first non-empty chunk) and the loop sends them.
Only a response that is still streaming after its first chunk, or a request
body that is still arriving, switches to the streaming mode: a task group in
which the worker thread, a loop task watching ``receive()`` and the sending
loop exchange data through two bounded :class:`~bridge._handoff.HandoffQueue`
objects, so memory stays bounded in both directions and a slow client slows
the app (backpressure) instead of growing a buffer.

Invariants:

* The worker thread never blocks on the event loop without a way out: on
  cancellation, disconnect or a failing ``send()`` both queues are aborted,
  which wakes the thread with :class:`ClientDisconnected`; the app's iterable
  is then closed and the thread returns before this coroutine does.
* One request never sees another's state: everything per-request lives on the
  ``_Exchange`` and ``AppRun`` objects; the thread gets a copy of the caller's
  contextvars (anyio does this).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, Final, cast

import anyio
from anyio import from_thread, to_thread
from asgiref.typing import HTTPScope

from ._handoff import HandoffQueue
from ._translate import DEFAULT_MAX_HEADER_LINES, BadRequest, environ_from_scope
from ._types import WsgiApp
from ._wsgi_app_run import AppRun, Outcome
from ._wsgi_input import ClientDisconnected, RequestBodyError, WsgiInput
from ._wsgi_response import FileWrapper, Message, ResponseState

__all__ = ("DEFAULT_BUFFER_SIZE", "ClientDisconnected", "FileWrapper", "WsgiToAsgi")

logger = logging.getLogger("bridge.wsgi_to_asgi")
errors_logger = logging.getLogger("bridge.wsgi_to_asgi.errors")

#: Bytes that may wait between the worker thread and the event loop, each way.
DEFAULT_BUFFER_SIZE: Final = 256 * 1024

Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
# The public signature uses the loose mappings servers and frameworks (Starlette,
# httpx, uvicorn) type ASGI apps with, so WsgiToAsgi type-checks wherever an ASGI
# app is expected; inside, the scope is read as asgiref's TypedDicts.
AnyScope = MutableMapping[str, Any]
AnyReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
AnySend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _ErrorStream:
    """``wsgi.errors``: each write becomes one log record on ``bridge.wsgi_to_asgi.errors``."""

    def write(self, text: str) -> int:
        line = text.rstrip("\n")
        if line:
            errors_logger.error("%s", line)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


_ERRORS: Final = _ErrorStream()


def _body_size(message: Message) -> int:
    body = message.get("body")
    return len(body) if body else 0


def _body(chunk: bytes, more_body: bool) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": more_body}


class WsgiToAsgi:
    """Wrap a WSGI application as an ASGI 3 application.

    ``http`` requests run the app in worker threads with a streamed
    ``wsgi.input`` and a streamed, backpressured response; ``lifespan``
    completes at once (WSGI has no lifespan); a ``websocket`` connection is
    closed before it is accepted (WSGI has no websockets), which servers
    answer with HTTP 403.

    Options:

    * ``limiter`` -- an ``anyio.CapacityLimiter`` bounding how many requests run
      the app at once. Default ``None``: anyio's default thread limiter of the
      running event loop (40 threads, shared with other ``to_thread`` users).
    * ``max_header_lines`` -- requests with more header lines are answered
      with 431. Default 100.
    * ``allow_underscores_in_headers`` -- keep request headers whose names
      contain ``_`` (dropped by default, because ``X_User`` would otherwise
      spoof ``X-User`` in the environ). Default ``False``.
    * ``multiprocess`` -- the value of ``wsgi.multiprocess``: set it when the
      server runs several worker processes. Default ``False``.
    * ``buffer_size`` -- bytes of request or response body that may wait
      between the event loop and the worker thread, per direction and
      request. Default 256 KiB.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        limiter: anyio.CapacityLimiter | None = None,
        max_header_lines: int = DEFAULT_MAX_HEADER_LINES,
        allow_underscores_in_headers: bool = False,
        multiprocess: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        if not callable(app):
            raise TypeError(f"WsgiToAsgi needs a WSGI application (a callable), got {app!r}")
        if limiter is not None and not isinstance(limiter, anyio.CapacityLimiter):
            raise TypeError(f"limiter must be an anyio.CapacityLimiter or None, got {limiter!r}")
        for name, value in (("max_header_lines", max_header_lines), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.app = app
        self.limiter = limiter
        self.max_header_lines = max_header_lines
        self.allow_underscores_in_headers = allow_underscores_in_headers
        self.multiprocess = multiprocess
        self.buffer_size = buffer_size

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        kind = scope["type"]
        recv = cast("Receive", receive)
        if kind == "http":
            await _Exchange(self, cast("HTTPScope", scope), recv, cast("Send", send)).run()
        elif kind == "lifespan":
            await _serve_lifespan(recv, cast("Send", send))
        elif kind == "websocket":
            await _close_websocket(recv, cast("Send", send))
        else:
            raise ValueError(f"WsgiToAsgi cannot serve ASGI scope type {kind!r}")


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _close_websocket(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        logger.info("websocket connection refused: a WSGI application cannot accept websockets")
        await send({"type": "websocket.close", "code": 1000})


async def _send_batch(send: Send, messages: list[Message]) -> None:
    """Send ``messages``, joining consecutive body chunks into one ``send()``."""
    parts: list[bytes] = []
    for message in messages:
        if message["type"] == "http.response.body":
            parts.append(message["body"])
            if message["more_body"]:
                continue
            message = _body(b"".join(parts), False)
            parts = []
        elif parts:
            await send(_body(b"".join(parts), True))
            parts = []
        await send(message)
    if parts:
        await send(_body(b"".join(parts), True))


class _Exchange:
    """One HTTP request/response through the WSGI app (see the module docstring)."""

    def __init__(self, adapter: WsgiToAsgi, scope: HTTPScope, receive: Receive, send: Send):
        self.adapter = adapter
        self.scope = scope
        self.receive = receive
        self.send = send
        self.limiter = adapter.limiter
        self.send_error: Exception | None = None
        # Every thread call of this request runs in this one Context: a generator
        # response that sets context variables (Flask's stream_with_context) and
        # resets them with tokens in a later call finds them, as on a WSGI server.
        self.context = contextvars.copy_context()

    async def in_thread(self, func: Callable[..., Outcome | None], *args: object) -> Any:
        """Run ``func(*args)`` in a worker thread, in this request's Context."""
        return await to_thread.run_sync(self.context.run, func, *args, limiter=self.limiter)

    def _describe(self) -> str:
        return f"{self.scope.get('method', '?')} {self.scope.get('path', '?')}"

    async def run(self) -> None:
        message = await self.receive()
        if message["type"] != "http.request":
            logger.info("%s: client disconnected before sending its request", self._describe())
            return
        more_body = bool(message.get("more_body", False))
        requests = HandoffQueue[bytes](self.adapter.buffer_size, len) if more_body else None
        try:
            run = self._prepare(message.get("body", b""), requests)
        except (BadRequest, RequestBodyError) as exc:
            logger.warning("%s: bad request: %s", self._describe(), exc)
            await self._send_plain_error(getattr(exc, "status", 400))
            return
        if requests is not None:
            await self._stream(run, partial(run.begin, False), requests)
        else:
            await self._run_fast(run)

    def _prepare(self, body: bytes, requests: HandoffQueue[bytes] | None) -> AppRun:
        adapter = self.adapter
        environ = environ_from_scope(
            self.scope,
            wsgi_input=None,
            wsgi_errors=_ERRORS,
            max_header_lines=adapter.max_header_lines,
            allow_underscores_in_headers=adapter.allow_underscores_in_headers,
            multiprocess=adapter.multiprocess,
            file_wrapper=FileWrapper,
        )
        length = environ.get("CONTENT_LENGTH")
        more = requests.get_from_thread if requests is not None else None
        environ["wsgi.input"] = WsgiInput(body, more, int(length) if length else None)
        state = ResponseState(_ignore, head_request=self.scope["method"] == "HEAD")
        extensions = self.scope.get("extensions") or {}
        pathsend = "http.response.pathsend" in extensions
        return AppRun(adapter.app, environ, state, pathsend=pathsend)

    async def _send_plain_error(self, status: int) -> None:
        state = ResponseState(_ignore, head_request=False)
        messages: list[Message] = []
        state.emit = messages.append
        state.fail(status)
        await self._send_or_log(messages)

    async def _send_or_log(self, messages: list[Message]) -> bool:
        """Send ``messages``; False (after one log line) when the client is gone."""
        try:
            await _send_batch(self.send, messages)
        except OSError as exc:
            logger.info("%s: client disconnected: send() raised %r", self._describe(), exc)
            return False
        return True

    # -- fast path: one thread hand-off ---------------------------------------------

    async def _run_fast(self, run: AppRun) -> None:
        pending: list[Message] = []
        run.state.emit = pending.append
        run.flush = partial(self._flush_from_thread, pending)
        try:
            outcome = await self.in_thread(run.begin, True)
            if await self._send_or_log(pending) and outcome is Outcome.STREAMING:
                await self._stream(run, run.resume, None)
        finally:
            if not run.closed:  # cancelled or disconnected between two thread calls
                with anyio.CancelScope(shield=True):
                    await self.in_thread(run.close)

    def _flush_from_thread(self, pending: list[Message]) -> None:
        """After ``write()`` on the fast path: transmit now (PEP 3333 forbids holding it)."""
        if pending:
            batch = pending[:]
            pending.clear()
            from_thread.run(_send_batch, self.send, batch)

    # -- streaming: thread and loop run side by side ----------------------------------

    async def _stream(
        self, run: AppRun, work: Callable[[], Outcome], requests: HandoffQueue[bytes] | None
    ) -> None:
        responses = HandoffQueue[Message](self.adapter.buffer_size, _body_size)
        run.state.emit = responses.put_from_thread
        run.flush = _ignore_flush
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_worker, work, responses)
            tg.start_soon(self._watch_client, requests, responses)
            try:
                await self._send_stream(responses)
            finally:
                gone = ClientDisconnected("the response was abandoned by the server")
                responses.abort(gone)
                if requests is not None:
                    requests.abort(gone)
                tg.cancel_scope.cancel()
        if self.send_error is not None:
            raise self.send_error

    async def _run_worker(
        self, work: Callable[[], Outcome], responses: HandoffQueue[Message]
    ) -> None:
        try:
            await self.in_thread(work)
        finally:
            responses.finish()

    async def _send_stream(self, responses: HandoffQueue[Message]) -> None:
        while True:
            try:
                batch = await responses.get_all()
            except ClientDisconnected:
                return
            if not batch:
                return
            try:
                await _send_batch(self.send, batch)
            except Exception as exc:
                logger.info("%s: send() raised %r; response abandoned", self._describe(), exc)
                gone = ClientDisconnected(f"send() raised {exc!r}")
                gone.already_logged = True
                responses.abort(gone)
                if not isinstance(exc, OSError):
                    self.send_error = exc
                return

    async def _watch_client(
        self, requests: HandoffQueue[bytes] | None, responses: HandoffQueue[Message]
    ) -> None:
        """Feed the request body to the thread, then watch for a disconnect."""
        try:
            if requests is not None:
                await self._pump_body(requests)
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    break
        except ClientDisconnected:
            return
        gone = ClientDisconnected("client disconnected before the response was complete")
        responses.abort(gone)
        if requests is not None:
            requests.abort(gone)

    async def _pump_body(self, requests: HandoffQueue[bytes]) -> None:
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                gone = ClientDisconnected("client disconnected before the request body ended")
                requests.abort(gone)
                raise gone
            chunk = message.get("body", b"")
            if chunk:
                await requests.put(chunk)
            if not message.get("more_body", False):
                requests.finish()
                return


def _ignore(message: Message) -> None:
    pass


def _ignore_flush() -> None:
    pass
