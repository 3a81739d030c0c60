"""One request through ``AsgiToWsgi``: the WSGI thread on one side, the app's task on the other.

Theory of operation
-------------------
The WSGI thread and the app's task (on the shared background loop) talk
through two channels, so a simple request costs one hand-off each way:

* loop -> thread: a ``queue.SimpleQueue`` of events (``HEAD``, ``BODY``,
  ``PATHSEND``, ``READ``, ``FAILED``, ``ENDED``). Putting never blocks the loop.
  (Under gevent the WSGI "thread" is a greenlet whose wait yields to its hub:
  ``bridge._loop.green.cross_thread_queue``.)
* thread -> loop: callbacks scheduled with the loop's "call soon from another
  thread" primitive, which set anyio events the app's task waits on.

Invariants:

* The response head is held on the loop until the first body message, so an
  app that fails between ``http.response.start`` and its first body still gets
  a clean 500 rather than a half-sent response.
* Response bytes queued for the thread never exceed ``buffer_size`` plus one
  message: ``send()`` waits until the thread has drained the queue to half.
* The thread is the only reader of ``wsgi.input``; the app asks for a chunk
  with a ``READ`` event, and at most one ``READ`` is outstanding.
* Once the thread is done (response complete, closed early, or timed out) it
  never serves another ``READ``; ``thread_done`` is flipped under ``lock`` so a
  ``READ`` posted concurrently is answered with ``http.disconnect`` instead.
* Every app task ends: a closed or timed-out response cancels it after
  ``disconnect_grace`` seconds, and the thread never waits longer than
  ``response_timeout`` for the head.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from queue import Empty
from typing import Any, Final

import anyio
from asgiref.typing import ASGI3Application, HTTPScope

from bridge._http.errors import error_body
from bridge._http.logfields import EventLog
from bridge._http.types import Environ, StartResponse, WsgiHeaders
from bridge._http.wsgi_input import ClientDisconnected
from bridge._loop.green import CrossThreadQueue, cross_thread_queue
from bridge._loop.handle import LoopHandle
from bridge.asgi_to_wsgi._response import status_line, wsgi_headers

__all__ = ("AsgiToWsgiRequest", "ClientDisconnected", "Options")

logger: Final = logging.getLogger("bridge.asgi_to_wsgi")
log: Final = EventLog(logger, "AsgiToWsgi")

READ, HEAD, BODY, PATHSEND, FAILED, ENDED = range(6)
_DISCONNECT: Final = {"type": "http.disconnect"}
_ENDED_EVENT: Final[tuple[int, Any]] = (ENDED, None)


@dataclass(frozen=True, slots=True)
class Options:
    chunk_size: int
    prefetch_size: int
    buffer_size: int
    response_timeout: float
    disconnect_grace: float


def respond_with_error(
    start_response: StartResponse, status: int, exc_info: Any = None, detail: str | None = None
) -> list[bytes]:
    """Answer with bridge's error body for ``status`` (the same bytes as under WsgiToAsgi)."""
    rendered = error_body(status, detail)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in rendered.headers]
    if exc_info is not None:
        start_response(status_line(status), headers, exc_info)
    else:
        start_response(status_line(status), headers)
    return [rendered.body]


class AsgiToWsgiRequest:
    """Per-request state shared by the WSGI thread and the app's task."""

    __slots__ = (
        "app_finished",
        "body_done",
        "cancel_requested",
        "cancel_scope",
        "complete",
        "disconnected",
        "done_waiter",
        "drain_waiter",
        "environ",
        "handle",
        "head",
        "head_sent",
        "lock",
        "options",
        "prefetched",
        "queued",
        "read_pending",
        "read_result",
        "read_waiter",
        "remaining",
        "scope",
        "task",
        "thread_done",
        "to_thread",
        "truncated",
    )

    def __init__(
        self,
        options: Options,
        handle: LoopHandle,
        scope: HTTPScope,
        environ: Environ,
        body_length: int | None,
        prefetched: list[dict[str, Any]],
    ) -> None:
        self.options = options
        self.handle = handle
        self.scope = scope
        self.environ = environ
        self.to_thread: CrossThreadQueue[tuple[int, Any]] = cross_thread_queue()
        self.lock = threading.Lock()
        # shared, guarded by lock
        self.thread_done = False
        self.read_pending = False
        self.queued = 0
        self.drain_waiter: anyio.Event | None = None
        # thread side
        self.remaining = body_length
        self.truncated = False
        # loop side
        self.prefetched = prefetched  # request messages read before dispatch, in reverse order
        self.body_done = False
        self.head: tuple[str, WsgiHeaders] | None = None
        self.head_sent = False
        self.complete = False
        self.disconnected = False
        self.app_finished = False
        self.read_waiter: anyio.Event | None = None
        self.read_result: dict[str, Any] | None = None
        self.done_waiter: anyio.Event | None = None
        self.cancel_scope: anyio.CancelScope | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False

    def describe(self) -> str:
        return f"{self.scope['method']} {self.scope['path']}"

    # -- loop side: the app's task -------------------------------------------

    async def run(self, app: ASGI3Application, running: set[AsgiToWsgiRequest]) -> None:
        """The request's task: run the app, report how it ended, leave ``running``."""
        outcome = _ENDED_EVENT
        try:
            if self.handle.native_tasks:
                # Cheaper than a cancel scope per request: cancel the task itself, and
                # swallow only the cancellation this request asked for.
                task = self.task = asyncio.current_task()
                if not self.cancel_requested:
                    try:
                        await app(self.scope, self.receive, self.send)  # type: ignore[arg-type]
                    except asyncio.CancelledError:
                        if not self._asked_to_cancel() or task is None or task.uncancel() > 0:
                            raise
            else:
                with anyio.CancelScope() as cancel_scope:
                    self.cancel_scope = cancel_scope
                    if self.cancel_requested:
                        cancel_scope.cancel()
                    await app(self.scope, self.receive, self.send)  # type: ignore[arg-type]
        except Exception as exc:
            outcome = (FAILED, exc)
        finally:
            self.app_finished = True
            self._report_exit(outcome)
            running.discard(self)

    def _asked_to_cancel(self) -> bool:
        return self.cancel_requested  # set by cancel() while the app was awaiting

    def _report_exit(self, outcome: tuple[int, Any]) -> None:
        if not self.complete:  # (complete is loop-side state: no lock needed to read it)
            with self.lock:
                if not self.thread_done:
                    self.to_thread.put(outcome)
                    return
        exc = outcome[1]
        # A cut-short body was logged when it was read; the app failing over it
        # (Starlette's ClientDisconnect) is the same event, not a second one.
        if self.truncated:
            return
        if outcome[0] == FAILED and not (self.disconnected and _caused_by_os_error(exc)):
            log.error(
                "failed",
                self.scope,
                "the app raised after its response was sent: %s: %s",
                type(exc).__name__,
                exc,
            )

    async def receive(self) -> dict[str, Any]:
        if self.disconnected:
            return _DISCONNECT
        if not self.body_done:
            if self.prefetched:
                message = self.prefetched.pop()
                self.body_done = not message["more_body"]
                return message
            return await self._read_from_thread()
        if not self.complete:
            if self.done_waiter is None:
                self.done_waiter = anyio.Event()
            await self.done_waiter.wait()
        return _DISCONNECT

    async def _read_from_thread(self) -> dict[str, Any]:
        waiter = self.read_waiter
        if waiter is None:
            waiter = self.read_waiter = anyio.Event()
            with self.lock:
                if self.thread_done:
                    self.read_result = _DISCONNECT
                    waiter.set()
                else:
                    self.read_pending = True
                    self.to_thread.put((READ, None))
        # A cancelled receive() leaves the waiter in place for the next call: no chunk is lost.
        await waiter.wait()
        self.read_waiter = None
        message, self.read_result = self.read_result or _DISCONNECT, None
        if message["type"] == "http.disconnect" or not message["more_body"]:
            self.body_done = True
        return message

    async def send(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "http.response.body":
            waiter = self._send_body(message)
            if waiter is not None:
                await waiter.wait()
        elif kind == "http.response.start":
            if self.head is not None:
                raise RuntimeError("http.response.start sent twice")
            self.head = (
                status_line(message.get("status")),
                wsgi_headers(message.get("headers", ())),
            )
        elif kind == "http.response.pathsend" and "wsgi.file_wrapper" in self.environ:
            self._send_pathsend(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP response")

    def _check_can_send(self, what: str) -> None:
        if self.head is None:
            raise RuntimeError(f"{what} sent before http.response.start")
        if self.complete:
            raise RuntimeError(f"{what} sent after the response was complete")
        if self.disconnected:
            raise ClientDisconnected(f"the client went away; cannot send {what}")

    def _send_body(self, message: dict[str, Any]) -> anyio.Event | None:
        """Hand a body message to the thread; the event to wait on when the buffer is full."""
        self._check_can_send("http.response.body")
        body = message.get("body", b"")
        if not isinstance(body, bytes):
            if not isinstance(body, bytearray | memoryview):
                raise RuntimeError(f"http.response.body body must be bytes, not {type(body)}")
            body = bytes(body)
        more = bool(message.get("more_body", False))
        if not more:
            self._mark_complete()
        event: tuple[int, Any] = (BODY, (body, more))
        if not self.head_sent and self.head is not None:
            event = (HEAD, (*self.head, body, more))
            self.head_sent = True
        return self._enqueue(event, len(body), may_wait=more)

    def _send_pathsend(self, message: dict[str, Any]) -> None:
        self._check_can_send("http.response.pathsend")
        if self.head_sent:
            raise RuntimeError("http.response.pathsend sent after http.response.body")
        path = message.get("path")
        if not isinstance(path, str):
            raise RuntimeError(f"http.response.pathsend path must be a str, not {type(path)}")
        self._mark_complete()
        self.head_sent = True
        self._enqueue((PATHSEND, (*(self.head or ("", [])), path)), 0, may_wait=False)

    def _mark_complete(self) -> None:
        self.complete = True
        if self.done_waiter is not None:
            self.done_waiter.set()

    def _enqueue(self, event: tuple[int, Any], size: int, *, may_wait: bool) -> anyio.Event | None:
        with self.lock:
            if self.thread_done:
                raise ClientDisconnected("the client went away; the response was closed")
            self.queued += size
            waiter = None
            if may_wait and self.queued > self.options.buffer_size:
                waiter = self.drain_waiter = anyio.Event()
            self.to_thread.put(event)
        return waiter

    def client_gone(self, grace: float) -> None:
        """Loop thread: the WSGI side is gone early; wake every waiter, cancel after grace."""
        self.disconnected = True
        for waiter in (self.read_waiter, self.done_waiter, self.drain_waiter):
            if waiter is not None:
                waiter.set()
        if self.app_finished:
            return
        if grace <= 0:
            self.cancel()
        else:
            self.handle.call_later_on_loop(grace, self.cancel)

    def cancel(self) -> None:
        if self.cancel_requested:
            return
        self.cancel_requested = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()
        elif self.task is not None and not self.app_finished:
            self.task.cancel()

    def _answer_read_with_disconnect(self) -> None:
        if self.read_waiter is not None:
            self.read_result = _DISCONNECT
            self.read_waiter.set()

    # -- thread side: the WSGI server's thread ------------------------------

    def respond(self, start_response: StartResponse) -> Any:
        event = self._next_event(self.options.response_timeout)
        if event is None:
            self.finish(early=True, grace=0.0)
            log.error(
                "failed",
                self.scope,
                "the app sent no response within %ss; sent 504",
                self.options.response_timeout,
            )
            return respond_with_error(start_response, 504)
        kind, payload = event
        if kind == HEAD:
            status, headers, body, more = payload
            if more:  # a complete response leaves nothing to account for
                self._consumed(len(body))
            try:
                start_response(status, headers)
            except BaseException:
                self.finish(early=True)
                raise
            if self.scope["method"] == "HEAD":
                # A HEAD response has no body on the wire (RFC 9110 9.3.2), whatever the
                # app sends: a server such as waitress would write it onto the connection.
                if not more:
                    self.finish()
                    return []
                return _Discarded(self, b"")
            if not more:
                self.finish()
                return [body]
            return _Stream(self, body)
        if kind == PATHSEND:
            return self._respond_with_file(start_response, *payload)
        self.finish()
        return self._respond_without_head(start_response, kind, payload)

    def _respond_without_head(self, start_response: StartResponse, kind: int, exc: Any) -> Any:
        if self.truncated:  # already logged; the app most likely failed because of it
            return respond_with_error(start_response, 400)
        if kind == FAILED:
            log.error(
                "failed",
                self.scope,
                "the app raised before its response started: %s: %s; sent 500",
                type(exc).__name__,
                exc,
            )
            return respond_with_error(start_response, 500, (type(exc), exc, exc.__traceback__))
        log.error("failed", self.scope, "the app returned without sending a response; sent 500")
        return respond_with_error(start_response, 500)

    def _respond_with_file(
        self, start_response: StartResponse, status: str, headers: WsgiHeaders, path: str
    ) -> Any:
        self.finish()
        try:
            file = open(path, "rb")  # noqa: SIM115 - the server closes it via file_wrapper
        except OSError as exc:
            log.error("failed", self.scope, "pathsend cannot open %r: %s; sent 500", path, exc)
            return respond_with_error(start_response, 500)
        try:
            start_response(status, headers)
        except BaseException:
            file.close()
            raise
        return self.environ["wsgi.file_wrapper"](file, self.options.chunk_size)

    def _next_event(self, idle_timeout: float | None) -> tuple[int, Any] | None:
        """The next response event; None when the app stays silent for ``idle_timeout``.

        Serving a body read counts as activity, so a slow upload never times out.
        """
        while True:
            try:
                event = self.to_thread.get(timeout=idle_timeout)
            except Empty:
                return None
            if event[0] != READ:
                return event
            self._serve_read()

    def _serve_read(self) -> None:
        message = self._read_chunk()
        with self.lock:
            self.read_pending = False
        self.read_result = message
        waiter = self.read_waiter
        if waiter is not None:
            self.handle.call_soon(waiter.set)

    def _read_chunk(self) -> dict[str, Any]:
        size = self.options.chunk_size
        if self.remaining is not None:
            size = min(size, self.remaining)
        try:
            data = self.environ["wsgi.input"].read(size)
        except Exception as exc:
            return self._truncated(f"reading the request body failed: {type(exc).__name__}: {exc}")
        if self.remaining is None:
            return {"type": "http.request", "body": data, "more_body": bool(data)}
        if not data and size:
            return self._truncated(f"the request body ended {self.remaining} bytes early")
        self.remaining -= len(data)
        return {"type": "http.request", "body": data, "more_body": self.remaining > 0}

    def _truncated(self, reason: str) -> dict[str, Any]:
        self.truncated = True
        log.warning("truncated", self.scope, "%s; the app sees http.disconnect", reason)
        return _DISCONNECT

    def _consumed(self, size: int) -> None:
        with self.lock:
            self.queued -= size
            waiter = self.drain_waiter
            if waiter is not None and self.queued <= self.options.buffer_size // 2:
                self.drain_waiter = None
            else:
                waiter = None
        if waiter is not None:
            self.handle.call_soon(waiter.set)

    def finish(self, *, early: bool = False, grace: float | None = None) -> None:
        """The thread is done with this request; ``early`` when the response is incomplete."""
        with self.lock:
            if self.thread_done:
                return
            self.thread_done = True
            read_pending = self.read_pending
        if early:
            self.handle.call_soon(
                self.client_gone, self.options.disconnect_grace if grace is None else grace
            )
        elif read_pending:
            self.handle.call_soon(self._answer_read_with_disconnect)


def _caused_by_os_error(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception it was raised from is an ``OSError``.

    After the client went away, ``send()`` raises :class:`ClientDisconnected`
    (an ``OSError``); frameworks re-raise it as their own type (Starlette's
    ``ClientDisconnect``), which is the same event and no app error.
    """
    for _ in range(16):  # a chain, bounded against cycles
        if exc is None:
            return False
        if isinstance(exc, OSError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _Stream:
    """The WSGI iterable of a streamed response: yields chunks as the app sends them."""

    __slots__ = ("_done", "_first", "_request")

    def __init__(self, request: AsgiToWsgiRequest, first: bytes) -> None:
        self._request = request
        self._first = first
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        request = self._request
        while not self._done:
            event = request._next_event(None)
            kind, payload = event if event is not None else _ENDED_EVENT
            if kind == BODY:
                body, more = payload
                request._consumed(len(body))
                if not more:
                    self._done = True
                    request.finish()
                if body:
                    return body  # type: ignore[no-any-return]
                continue
            self._done = True
            request.finish()
            if kind == FAILED:
                if request.truncated:  # already logged when the body was cut short
                    raise payload
                log.error(
                    "aborted",
                    request.scope,
                    "the app raised after its response started: %s: %s",
                    type(payload).__name__,
                    payload,
                )
                raise payload
            log.error("aborted", request.scope, "the app returned before finishing its response")
        raise StopIteration

    def close(self) -> None:
        if not self._done:
            self._done = True
            log.info(
                "abandoned",
                self._request.scope,
                "the WSGI server closed the response early (client gone); "
                "the app sees http.disconnect",
            )
            self._request.finish(early=True)


class _Discarded(_Stream):
    """A HEAD response's iterable: the app's body is received (so its ``send`` never
    waits) and dropped; the server gets no bytes."""

    __slots__ = ()

    def __next__(self) -> bytes:
        for _ in iter(super().__next__, None):  # until the stream ends (StopIteration)
            pass
        raise StopIteration
