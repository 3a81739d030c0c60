"""``WsgiToAsgi``: run a WSGI (PEP 3333) application under any ASGI 3 server.

Theory of operation
-------------------
Each ``http`` request is one :class:`_Exchange`, and costs ONE worker-thread
hand-off. The event loop reads the first body message before anything else;
then one thread call runs the app and its whole iteration (``AppRun.begin``).

* A list or tuple response (and any error page) is collected in memory, where
  it already was, and the loop sends it after the thread returns.
* Any other iterable, and ``write()``, switch the response to streaming at the
  first non-empty chunk: from then on the thread puts messages into a bounded
  :class:`~bridge._handoff.HandoffQueue` and a sender task, spawned on the
  loop by a non-blocking callback from the thread, transmits each batch while
  the app produces the next (PEP 3333 forbids holding a chunk back).
* A request body that is still arriving is fed to ``wsgi.input`` through a
  second bounded queue by a loop task, which then watches for a disconnect.
  For a streamed response the disconnect watcher starts lazily, when the sender
  has to wait for the thread.

Memory stays bounded in both directions, and a slow client slows the app
(backpressure) instead of growing a buffer.

Invariants:

* The worker thread never waits on the loop without a way out: every loop task
  of the exchange aborts both queues when it is cancelled or sees the client go
  away, and a failing ``send()`` aborts them too; the thread then gets
  :class:`ClientDisconnected` at its next queue operation, closes the app's
  iterable and returns before this coroutine does (all tasks live in one task
  group around the thread call).
* One request never sees another's state: everything per-request lives on the
  ``_Exchange`` and ``AppRun`` objects, and the thread runs the app in a copy of
  the caller's contextvars context (one copy for the whole request).
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

__all__ = (
    "DEFAULT_BUFFER_SIZE",
    "ClientDisconnected",
    "FileWrapper",
    "RequestBodyError",
    "WsgiToAsgi",
)

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

    # Learned per instance, not configured: whether the app's last response streamed
    # (see _Exchange._run_without_task_group). Races between requests are harmless.
    _expect_streaming = False

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
        # The thread's run of the app happens in this Context, a copy of the caller's.
        self.context = contextvars.copy_context()
        self.pending: list[Message] = []
        self.requests: HandoffQueue[bytes] | None = None
        self.responses = HandoffQueue[Message](adapter.buffer_size, _body_size)
        self.watching = False
        self.queue_in_use = False

    def _describe(self) -> str:
        return f"{self.scope.get('method', '?')} {self.scope.get('path', '?')}"

    async def run(self) -> None:
        message = await self.receive()
        if message["type"] != "http.request":
            logger.info("%s: client disconnected before sending its request", self._describe())
            return
        if message.get("more_body", False):
            self.requests = HandoffQueue[bytes](self.adapter.buffer_size, len)
        try:
            run = self._prepare(message.get("body", b""))
        except (BadRequest, RequestBodyError) as exc:
            logger.warning("%s: bad request: %s", self._describe(), exc)
            await self._send_plain_error(getattr(exc, "status", 400))
            return
        if self.requests is None and not self.adapter._expect_streaming:
            await self._run_without_task_group(run)
        else:
            await self._run_in_task_group(run, run.begin)
        if self.send_error is not None:
            raise self.send_error

    def _prepare(self, body: bytes) -> AppRun:
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
        more = self.requests.get_from_thread if self.requests is not None else None
        environ["wsgi.input"] = WsgiInput(body, more, int(length) if length else None)
        state = ResponseState(self.pending.append, head_request=self.scope["method"] == "HEAD")
        extensions = self.scope.get("extensions") or {}
        pathsend = "http.response.pathsend" in extensions
        run = AppRun(adapter.app, environ, state, pathsend=pathsend)
        run.start_streaming = partial(self._start_streaming, state)
        return run

    async def _send_plain_error(self, status: int) -> None:
        state = ResponseState(self.pending.append, head_request=False)
        state.fail(status)
        await self._send_or_log(self.pending)

    async def _send_or_log(self, messages: list[Message]) -> bool:
        """Send ``messages``; False (after one log line) when the client is gone."""
        try:
            await _send_batch(self.send, messages)
        except OSError as exc:
            logger.info("%s: client disconnected: send() raised %r", self._describe(), exc)
            return False
        return True

    # -- the worker thread -----------------------------------------------------------

    async def _run_without_task_group(self, run: AppRun) -> None:
        """The cheapest path: one thread call, then the loop sends what it collected.

        A task group costs about a third of a small request, so it is only opened
        when the response turns out to stream; the adapter then remembers that its
        app streams and opens the group up front next time.
        """
        run.stream_in_place = False
        run.flush = self._flush_from_thread
        try:
            outcome = await self._call_app(run.begin)
            if outcome is not Outcome.STREAMING:
                await self._send_or_log(self.pending)
                return
            self.adapter._expect_streaming = True
            # start + first chunk go out before the app is asked for the next one
            if await self._send_or_log(self.pending):
                self.pending.clear()
                await self._run_in_task_group(run, run.resume)
        finally:
            if not run.closed:  # cancelled or disconnected between the two thread calls
                with anyio.CancelScope(shield=True):
                    await to_thread.run_sync(self.context.run, run.close, limiter=self.limiter)

    async def _run_in_task_group(self, run: AppRun, work: Callable[[], Outcome]) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            if self.requests is not None:
                self.watching = True
                tg.start_soon(self._watch_client)  # it feeds the request body to the thread
            if run.streaming:  # resuming a response that already started
                run.state.emit = self.responses.put_from_thread
                self.queue_in_use = True
                tg.start_soon(self._send_stream)
            await self._call_app(work)
            if not run.streaming:
                await self._send_or_log(self.pending)
                if self.watching:
                    tg.cancel_scope.cancel()  # stops the body pump
                if self.requests is None:
                    self.adapter._expect_streaming = False

    async def _call_app(self, work: Callable[[], Outcome]) -> Outcome:
        try:
            outcome: Outcome = await to_thread.run_sync(
                self.context.run, self._thread_main, work, limiter=self.limiter
            )
        except BaseException:
            self._abort_queues("the request was cancelled")
            raise
        return outcome

    def _thread_main(self, work: Callable[[], Outcome]) -> Outcome:
        try:
            return work()
        finally:
            if self.queue_in_use:
                self.responses.finish()

    def _flush_from_thread(self) -> None:
        """After ``write()`` without a task group: transmit before returning (PEP 3333)."""
        if self.pending:
            batch = self.pending[:]
            self.pending.clear()
            from_thread.run(_send_batch, self.send, batch)

    def _start_streaming(self, state: ResponseState) -> None:
        """In the thread, at the first body chunk of an iterator or ``write()``.

        From here on the response goes through the bounded queue to a sender task on
        the loop, which transmits each chunk while the app produces the next (PEP 3333
        forbids holding a chunk back). A list response never gets here: it is complete
        in memory, and the loop sends it after the thread returns.
        """
        responses = self.responses
        state.emit = responses.put_from_thread
        self.queue_in_use = True
        for message in self.pending:
            responses.put_from_thread(message)
        self.pending.clear()
        responses.call_soon(self._spawn_sender)

    def _spawn_sender(self) -> None:
        self.tg.start_soon(self._send_stream)

    def _abort_queues(self, reason: str) -> None:
        gone = ClientDisconnected(reason)
        self.responses.abort(gone)
        if self.requests is not None:
            self.requests.abort(gone)

    # -- loop tasks while streaming ----------------------------------------------------

    async def _send_stream(self) -> None:
        """Send what the thread queues, until the end of the response.

        The disconnect watcher starts lazily, when the loop has to wait for the thread:
        a short generator that the thread finishes in one go (most Flask responses)
        needs no watcher task at all.
        """
        responses = self.responses
        try:
            while True:
                batch = responses.get_ready()
                if batch is None:
                    if not self.watching:
                        self.watching = True
                        self.tg.start_soon(self._watch_client)
                    batch = await responses.get_all()
                if not batch:
                    return
                await self._send_streamed(batch)
        except ClientDisconnected:
            return
        finally:
            self._abort_queues("the response was abandoned by the server")
            self.tg.cancel_scope.cancel()  # stops the watcher

    async def _send_streamed(self, batch: list[Message]) -> None:
        try:
            await _send_batch(self.send, batch)
        except Exception as exc:
            logger.info("%s: send() raised %r; response abandoned", self._describe(), exc)
            gone = ClientDisconnected(f"send() raised {exc!r}")
            gone.already_logged = True
            self.responses.abort(gone)
            if not isinstance(exc, OSError):
                self.send_error = exc
            raise gone from None

    async def _watch_client(self) -> None:
        """Feed the request body to the thread, then watch for a disconnect.

        Cancelled when the response is done; a cancellation before that (the server
        cancelled the request) also aborts the queues, so the thread never waits on a
        loop that stopped serving it.
        """
        try:
            if self.requests is not None:
                await self._pump_body(self.requests)
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except ClientDisconnected:
            return
        except BaseException:
            self._abort_queues("the request was cancelled")
            raise
        self._abort_queues("client disconnected before the response was complete")

    async def _pump_body(self, requests: HandoffQueue[bytes]) -> None:
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                self._abort_queues("client disconnected before the request body ended")
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if chunk:
                await requests.put(chunk)
            if not message.get("more_body", False):
                requests.finish()
                return
