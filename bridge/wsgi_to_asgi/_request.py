"""One HTTP request of :class:`bridge.WsgiToAsgi`: the event-loop side.

Theory of operation
-------------------
Each ``http`` request is one :class:`WsgiToAsgiRequest`. The event loop reads the first
body message before anything else; then one thread call runs the app and its
iteration (``AppRun.begin``) in one of bridge's worker threads
(:func:`bridge._loop.crossing.start_in_worker`, under the adapter's limiter).

* A list or tuple response (and any error page) is collected in memory, where
  it already was, and the loop sends it after the thread returns: one thread
  hand-off, no task group, no other task.
* Any other iterable, and ``write()``, make the response stream at the first
  non-empty chunk (PEP 3333 forbids holding a chunk back while the app produces
  the next). When the adapter expects that (its app streamed before), the
  thread goes on putting messages into a bounded
  :class:`~bridge._loop.handoff.HandoffQueue`, and the request's own task, free while
  the thread call runs, transmits each batch while the app produces the next.
  Only a stream that goes on after a batch went out opens a task group, for the
  disconnect watcher. When it does not expect it, the thread returns at the
  first chunk, the loop sends it, a second thread call goes on the same way,
  and the adapter remembers for next time.
* A request body whose Content-Length is at most ``prefetch_size`` (by default the
  request queue's bound) is received whole by the request's own task before the app
  starts (as a server that buffers bodies would): no thread waits on the client, the
  app reads it without a hand-off, and the request takes the paths above, with no
  body pump and no task group.
* Any other request body still arriving is fed to ``wsgi.input`` through a
  second bounded queue by a loop task, which then watches ``receive()`` for a
  disconnect; such an exchange runs in a task group from the start, and a
  sender task (spawned by a non-blocking loop callback from the thread at the
  first streamed chunk) transmits the response. A streamed response starts the
  watcher once it outlasts a batch.

Memory stays bounded in both directions, and a slow client slows the app
(backpressure) instead of growing a buffer.

Invariants:

* The worker thread never waits on the loop without a way out: every loop task
  of the exchange (and the request's task while it sends) aborts both queues
  when it is cancelled or sees the client go away, and a failing ``send()``
  aborts them too; the thread then gets :class:`ClientDisconnected` at its next
  queue operation, closes the app's iterable and returns before this coroutine
  does (every thread call is awaited, through cancellation, and every task of
  an exchange lives in a task group the exchange awaits).
* One request never sees another's state: everything per-request lives on the
  ``WsgiToAsgiRequest`` and ``AppRun`` objects, and the thread runs the app in a copy of
  the caller's contextvars context (one copy for the whole request).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
from anyio import from_thread
from anyio.abc import TaskGroup
from asgiref.typing import HTTPScope

from bridge._http.logfields import EventLog
from bridge._http.translate import BadRequest, environ_from_scope
from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError, WsgiInput
from bridge._loop.crossing import finish_in_worker, run_in_worker, start_in_worker
from bridge._loop.handoff import HandoffQueue
from bridge.wsgi_to_asgi._app_run import AppRun, AppRunResult, FileWrapper, Message, ResponseState

if TYPE_CHECKING:
    from bridge.wsgi_to_asgi._adapter import WsgiToAsgi

__all__ = ("Receive", "Send", "WsgiToAsgiRequest")

logger = logging.getLogger("bridge.wsgi_to_asgi")
log = EventLog(logger, "WsgiToAsgi")
errors_logger = logging.getLogger("bridge.wsgi_to_asgi.errors")

Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


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


async def send_batch(send: Send, messages: list[Message]) -> None:
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


class WsgiToAsgiRequest:
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
        # Created with the task group: a response collected in memory never needs it.
        self.responses: HandoffQueue[Message] | None = None
        self.tg: TaskGroup | None = None
        self.watching = False
        self.sender_started = False
        self.sent_some = False  # a streamed batch has gone out
        # The request body ended (more_body False) or the client went away: receive()
        # has nothing more to give. Set by the body pump.
        self.body_over = False
        # The app has returned: the body pump drops what it receives instead of queueing.
        self.app_done = False
        # response_timeout only (see _watch_response_start): the watchdog's scope, the
        # last sign of life (a body chunk the app took), and whether a response went out.
        self.watchdog: anyio.CancelScope | None = None
        self.last_life = 0.0
        self.response_began = False
        self.timed_out = False
        self.token_wait: anyio.CancelScope | None = None  # while waiting for a limiter token

    async def run(self) -> None:
        message = await self.receive()
        if message["type"] != "http.request":
            log.info("abandoned", self.scope, "client disconnected before sending its request")
            return
        try:
            environ = self._environ()  # a head it refuses is refused before any body is read
            length = environ.get("CONTENT_LENGTH")
            declared = int(length) if length else None
            body: bytes = message.get("body", b"")
            held: list[bytes] | None = []
            if message.get("more_body", False):
                held = await self._receive_held_body(len(body), declared)
                if held is None:
                    self.requests = HandoffQueue(self.adapter.request_buffer_size, len)
                elif self.body_over:
                    log.info("abandoned", self.scope, "client disconnected before its body ended")
                    return
            run = self._app_run(environ, body, held, declared)
        except (BadRequest, RequestBodyError) as exc:
            log.warning("refused", self.scope, "bad request: %s", exc)
            await self._send_plain_error(getattr(exc, "status", 400), str(exc))
            return
        if self.requests is not None or self.adapter.response_timeout is not None:
            await self._run_in_task_group(run, run.begin)
            if self.requests is not None and not self.body_over:
                await self._discard_unread_body()
        elif self.adapter._expect_streaming:
            await self._run_sending_here(run, run.begin)
        else:
            await self._run_without_task_group(run)
        if self.send_error is not None:
            raise self.send_error

    async def _receive_held_body(self, received: int, declared: int | None) -> list[bytes] | None:
        """The rest of a body of at most ``prefetch_size`` bytes, received here before the
        app starts; None (nothing received) for a body that must stream: one of unknown
        length, or declared longer than ``prefetch_size``.

        Memory stays within ``prefetch_size`` (plus one message): reading stops once the
        body is longer than declared, which ``wsgi.input`` then refuses as it would have.
        ``body_over`` is set when the client went away instead.
        """
        if declared is None or declared > self.adapter.prefetch_size:
            return None
        rest: list[bytes] = []
        while received <= declared:
            message = await self.receive()
            if message["type"] != "http.request":
                self.body_over = True
                break
            chunk = message.get("body", b"")
            if chunk:
                rest.append(chunk)
                received += len(chunk)
            if not message.get("more_body", False):
                break
        return rest

    def _environ(self) -> dict[str, Any]:
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
        if not adapter.allow_underscores_in_headers:
            self._log_dropped_headers()
        return environ

    def _app_run(
        self, environ: dict[str, Any], body: bytes, held: list[bytes] | None, declared: int | None
    ) -> AppRun:
        more: Callable[[], list[bytes] | None] | None = None
        if self.requests is not None:
            more = self.requests.get_all_from_thread
        elif held:
            more = partial(next, iter((held,)), None)  # the held chunks, then the end
        environ["wsgi.input"] = WsgiInput(body, more, declared)
        state = ResponseState(self.pending.append, head_request=self.scope["method"] == "HEAD")
        extensions = self.scope.get("extensions") or {}
        pathsend = "http.response.pathsend" in extensions
        run = AppRun(self.adapter.app, environ, state, pathsend=pathsend)
        run.start_streaming = partial(self._start_streaming, state)
        return run

    def _log_dropped_headers(self) -> None:
        dropped = [name for name, _ in self.scope["headers"] if b"_" in name]
        if dropped:
            names = ", ".join(repr(name.decode("latin-1")) for name in dropped[:5])
            log.info(
                "dropped",
                self.scope,
                "request header(s) %s: names with '_' could spoof '-' headers "
                "in the environ (allow_underscores_in_headers=True keeps them)",
                names,
            )

    async def _send_plain_error(self, status: int, detail: str) -> None:
        state = ResponseState(self.pending.append, head_request=False)
        state.fail(status, detail)
        await self._send_or_log(self.pending)

    async def _send_or_log(self, messages: list[Message]) -> bool:
        """Send ``messages``; False (after one log line) when the client is gone.

        ``send()`` raising anything but ``OSError`` is the server's bug: it is logged
        the same way and re-raised to the server.
        """
        try:
            await send_batch(self.send, messages)
        except Exception as exc:
            log.info("abandoned", self.scope, "send() raised %r; response abandoned", exc)
            if not isinstance(exc, OSError):
                raise
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
            result = await self._call_app(run.begin)
            if result is not AppRunResult.STREAMING:
                await self._send_or_log(self.pending)
                return
            self.adapter._expect_streaming = True
            # start + first chunk go out before the app is asked for the next one
            if await self._send_or_log(self.pending):
                self.pending.clear()
                self.sent_some = True
                await self._run_sending_here(run, run.resume)
        finally:
            if not run.closed:
                await self._close_on_the_way_out(run)

    async def _close_on_the_way_out(self, run: AppRun) -> None:
        """Cancelled or disconnected before the app ran, or between two thread calls."""
        if not run.has_iterable:
            run.close()  # cancelled while waiting for a token: the app never ran
            return
        with anyio.CancelScope(shield=True):
            await run_in_worker(run.close, self.context, self.limiter)

    async def _run_sending_here(self, run: AppRun, work: Callable[[], AppRunResult]) -> None:
        """No request body to pump: this task sends what the thread streams.

        The thread call runs while this task drains the response queue, so a response
        the thread finishes in one go (most Flask responses), or collects in memory,
        costs no task group and no other task. Only a response that goes on after a
        batch went out opens a group, for the disconnect watcher.
        """
        # Not HandoffQueue[Message](...): calling a subscripted generic costs a microsecond
        responses: HandoffQueue[Message] = HandoffQueue(self.adapter.buffer_size, _body_size)
        self.responses = responses
        self.sender_started = True  # the thread never asks for a sender task
        if run.streaming:  # resuming a response that already started
            run.state.emit = responses.put_from_thread
        running = await start_in_worker(
            partial(self._thread_main, work), self.context, self.limiter
        )
        try:
            if not await self._send_stream():
                async with anyio.create_task_group() as tg:
                    self.tg = tg
                    self._start_watching()
                    await self._send_stream()
        finally:
            # The queue has ended (the thread finished it) or was aborted: either way
            # the thread call is about to return; wait for it, through cancellation.
            await finish_in_worker(running)
        if not run.streaming:
            await self._send_or_log(self.pending)
            self.adapter._expect_streaming = False

    async def _run_in_task_group(self, run: AppRun, work: Callable[[], AppRunResult]) -> None:
        self.responses = HandoffQueue(self.adapter.buffer_size, _body_size)
        timeout = self.adapter.response_timeout
        async with anyio.create_task_group() as tg:
            self.tg = tg
            if timeout is not None:
                self._start_watchdog(tg, timeout)
            if self.requests is not None:
                self.watching = True
                tg.start_soon(self._watch_client)  # it feeds the request body to the thread
                # The pump goes first, until receive() would wait or the queue is full: a
                # body already at hand (most small uploads) is queued before the app
                # starts, and the thread reads it without waiting for the loop.
                await anyio.lowlevel.checkpoint()
            if run.streaming:  # resuming a response that already started
                run.state.emit = self.responses.put_from_thread
                self.sender_started = True
                tg.start_soon(self._send_stream)
            await self._call_app(work)
            if self.requests is not None and not self.body_over:
                self._stop_feeding_the_app(self.requests)
            if self.watchdog is not None:
                self.watchdog.cancel()  # the app returned: whatever it answered goes out
            if run.streaming and not self.sender_started:
                self.sender_started = True
                await self._send_stream()
            if not run.streaming:
                await self._send_or_log(self.pending)
                if self.watching:
                    tg.cancel_scope.cancel()  # stops the body pump
                if self.requests is None:
                    self.adapter._expect_streaming = False

    # -- response_timeout ----------------------------------------------------------------

    def _start_watchdog(self, tg: TaskGroup, timeout: float) -> None:
        """Answer 504 if no response has started ``timeout`` seconds after the last sign
        of life (the request's arrival, then each request-body chunk the app takes).

        Every send of the response goes through :meth:`_send_unless_timed_out`, on the
        loop, so the watchdog and the response cannot both start one.
        """
        self.watchdog = anyio.CancelScope()
        self.last_life = anyio.current_time()
        send = self.send

        async def send_unless_timed_out(message: Message) -> None:
            if self.timed_out:
                return  # the client has its 504; the app's late answer goes nowhere
            if not self.response_began:
                self.response_began = True
                if self.watchdog is not None:
                    self.watchdog.cancel()
            await send(message)

        self.send = send_unless_timed_out
        tg.start_soon(self._watch_response_start, timeout, send)

    async def _watch_response_start(self, seconds: float, send: Send) -> None:
        scope = self.watchdog
        if scope is None:
            return
        with scope:
            deadline = self.last_life + seconds
            while True:
                await anyio.sleep_until(deadline)
                if self.last_life + seconds <= anyio.current_time():
                    break
                deadline = self.last_life + seconds
            self.timed_out = True
            log.error(
                "timed out",
                self.scope,
                "the application started no response within %ss; answered 504",
                seconds,
            )
            gone = ClientDisconnected(f"the application started no response within {seconds}s")
            gone.already_logged = True
            self.app_done = True  # the app takes no more of the body: the pump drops it
            self._abort_queues(gone)
            if self.token_wait is not None:
                # Still waiting for a token: the app never runs. A call that runs is
                # waited for, holding its token, until the app returns.
                self.token_wait.cancel()
            with anyio.CancelScope(shield=True):  # the app returning must not cut it short
                await self._send_timeout_response(send)

    async def _send_timeout_response(self, send: Send) -> None:
        messages: list[Message] = []
        state = ResponseState(messages.append, head_request=self.scope["method"] == "HEAD")
        state.fail(504)
        # The app may hold this request's task for as long as it runs: the client
        # goes on with a new connection instead of waiting behind it.
        messages[0]["headers"].append((b"connection", b"close"))
        try:
            await send_batch(send, messages)
        except OSError as exc:
            log.info("abandoned", self.scope, "send() raised %r; 504 not sent", exc)

    async def _call_app(self, work: Callable[[], AppRunResult]) -> AppRunResult:
        try:
            if self.watchdog is not None:
                return await self._call_app_in_time(work)
            result: AppRunResult = await run_in_worker(
                partial(self._thread_main, work), self.context, self.limiter
            )
        except BaseException:
            self._abort_queues("the request was cancelled")
            raise
        return result

    async def _call_app_in_time(self, work: Callable[[], AppRunResult]) -> AppRunResult:
        """:meth:`_call_app` under ``response_timeout``: a timeout while the call waits
        for a limiter token drops it (nothing was dispatched)."""
        with anyio.CancelScope() as waiting:
            self.token_wait = waiting
            running = await start_in_worker(
                partial(self._thread_main, work), self.context, self.limiter
            )
        self.token_wait = None
        if waiting.cancelled_caught:
            return AppRunResult.ABORTED
        result: AppRunResult = await finish_in_worker(running)
        return result

    def _thread_main(self, work: Callable[[], AppRunResult]) -> AppRunResult:
        try:
            return work()
        finally:
            # Always ended, used or not: a task sending here waits on it.
            if self.responses is not None:
                self.responses.finish()

    def _flush_from_thread(self) -> None:
        """After ``write()`` without a task group: transmit before returning (PEP 3333)."""
        if self.pending:
            batch = self.pending[:]
            self.pending.clear()
            from_thread.run(send_batch, self.send, batch)

    def _start_streaming(self, state: ResponseState) -> None:
        """In the thread, at the first body chunk of an iterator or ``write()``.

        From here on the response goes through the bounded queue to a sender task on
        the loop, which transmits each chunk while the app produces the next (PEP 3333
        forbids holding a chunk back). A list response never gets here: it is complete
        in memory, and the loop sends it after the thread returns.
        """
        responses = self.responses
        if responses is None:
            raise RuntimeError("streaming in place needs the task group's queue")
        state.emit = responses.put_from_thread
        responses.put_many_from_thread(self.pending)
        self.pending.clear()
        if not self.sender_started:  # read across threads: set before the call started
            responses.call_soon(self._spawn_sender)

    def _spawn_sender(self) -> None:
        # On the loop. When the thread has already finished the response (a short
        # generator, e.g. most Flask responses), the handler sends it inline once the
        # thread call returns, which saves a task.
        if self.sender_started or self.responses is None or self.responses.finished:
            return
        if self.tg is None:
            raise RuntimeError("a sender task needs the exchange's task group")
        self.sender_started = True
        self.tg.start_soon(self._send_stream)

    def _abort_queues(self, reason: str | ClientDisconnected) -> None:
        """Fail both queues: the thread gets ``ClientDisconnected`` at its next use."""
        gone = reason if isinstance(reason, ClientDisconnected) else ClientDisconnected(reason)
        if self.responses is not None:
            self.responses.abort(gone)
        if self.requests is not None:
            self.requests.abort(gone)

    # -- loop tasks while streaming ----------------------------------------------------

    async def _send_stream(self) -> bool:
        """Send what the thread queues, until the end of the response.

        The disconnect watcher starts lazily, once the response outlasts one batch: a
        short generator that the thread finishes in one go (most Flask responses) needs
        no watcher task at all. Without a task group to start it in, this returns False
        at that point, the queue intact, to be called again inside a group; True when
        the response is over (complete, or abandoned with both queues aborted).
        """
        responses = self.responses
        if responses is None:
            raise RuntimeError("the sender runs only with the task group's queue")
        complete = handed_over = False
        try:
            while True:
                batch = responses.get_ready()
                if batch is None:
                    if self.sent_some and not self._start_watching():
                        handed_over = True
                        return False
                    batch = await responses.get_all()
                if not batch:
                    complete = True  # the thread finished the queue: nothing to release
                    return True
                await self._send_streamed(batch)
                self.sent_some = True
                # Some servers (uvicorn) drop sends to a gone client silently: only
                # receive() tells, so a stream that goes on needs the watcher.
                if not responses.finished and not self._start_watching():
                    handed_over = True
                    return False
        except ClientDisconnected:
            return True
        finally:
            if not (complete or handed_over):
                self._abort_queues("the response was abandoned by the server")
            if self.watching and self.tg is not None and not handed_over:
                self.tg.cancel_scope.cancel()  # stops the watcher (cancel() is not cheap)

    def _start_watching(self) -> bool:
        """Start the disconnect watcher if it is not running; False without a group."""
        if not self.watching:
            if self.tg is None:
                return False
            self.watching = True
            self.tg.start_soon(self._watch_client)
        return True

    async def _send_streamed(self, batch: list[Message]) -> None:
        try:
            await send_batch(self.send, batch)
        except Exception as exc:
            log.info("abandoned", self.scope, "send() raised %r; response abandoned", exc)
            gone = ClientDisconnected(f"send() raised {exc!r}")
            gone.already_logged = True
            self._abort_queues(gone)
            if not isinstance(exc, OSError):
                self.send_error = exc
            raise gone from None

    async def _watch_client(self) -> None:
        """Feed the request body to the thread, then watch for a disconnect.

        Once the body is in, watching waits for a streamed response that outlasts a batch
        (:meth:`_send_stream` starts this again then), as for a request without a body:
        a response collected in memory then needs no cancellation of this task, which
        costs more than the rest of the task. Cancelled when the response is done; a
        cancellation before that (the server cancelled the request) also aborts the
        queues, so the thread never waits on a loop that stopped serving it.
        """
        try:
            if self.requests is not None and not self.body_over:
                await self._pump_body(self.requests)
                if not self.sent_some:
                    self.watching = False
                    return
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
                self.body_over = True
                self._abort_queues("client disconnected before the request body ended")
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if chunk and not self.app_done:
                try:
                    await requests.put(chunk)
                except ClientDisconnected:
                    if not self.app_done:
                        raise
                if self.watchdog is not None:
                    self.last_life = anyio.current_time()  # room for it: the app read on
            if not message.get("more_body", False):
                self.body_over = True
                requests.finish()
                return

    def _stop_feeding_the_app(self, requests: HandoffQueue[bytes]) -> None:
        """The app returned with body unread: from now on the pump receives and drops.

        It must go on receiving while the response is sent: hypercorn's ``send()`` of the
        last body message puts ``http.disconnect`` into the request's receive queue,
        and waits (forever, holding the connection) while that queue is full.
        """
        self.app_done = True
        requests.abort(ClientDisconnected("the application has returned"))

    async def _discard_unread_body(self) -> None:
        """The app is done but left request body unread: receive and drop the rest.

        The pump stopped (it waited for queue room the app would never make). Returning
        now would leave the server's receive queue full: hypercorn then blocks forever
        putting ``http.disconnect`` into it, and holds the connection and its task for
        the life of the process. So, as an ASGI app that ignores a body must, read on
        until the body ends or the client goes away, one message at a time: memory
        stays bounded (nothing is kept) and no thread or limiter token is held.
        """
        dropped = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        log.log(
            logging.DEBUG,
            "discarded",
            self.scope,
            "the application left the request body unread; %d more bytes discarded",
            dropped,
        )
