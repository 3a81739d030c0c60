"""The ASGI driver: runs a middleware's exchange around an ASGI 3 app.

Invariants:

* Scope types the middleware does not list in ``scope_types`` (lifespan;
  websocket unless opted in) reach the app untouched. A refused websocket
  handshake is closed before accept, or answered with the refusal itself where
  the middleware asks for it and the server offers the denial extension.
* ``http.response.start`` is held until the first non-empty body chunk (or
  the end of the body), so an app that fails before its body is answered
  with the same 500 as under WSGI; ``Exchange.response`` sees it just then.
  A request-only exchange (no response-side hook) leaves the response path
  to the app and the server entirely.
* The caller's scope is never mutated (a rewritten head gives a copy).
* ``Exchange.finish`` runs exactly once, shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from bridge._http.translate import BadRequest
from bridge.middleware._core.asyncio_tail import AsyncioTail
from bridge.middleware._core.drive import (
    INLINE_FLUSH,
    bad_request,
    drive_async,
    failure,
    log,
)
from bridge.middleware._core.exchange import (
    BodyTimeout,
    ClientDisconnected,
    Effect,
    Exchange,
    Features,
    Forward,
    Outcome,
    ReplayBody,
    Respond,
    as_decision,
    bad_decision,
    features_of,
)
from bridge.middleware._core.heads import (
    RequestHead,
    Response,
    ResponseHead,
    head_for_body,
    head_from_scope,
    scope_with_head,
)
from bridge.middleware._core.response_path import ResponsePath
from bridge.middleware._core.timed_receive import receive_within

if TYPE_CHECKING:
    from bridge.middleware._core.base import Middleware

__all__ = ("run_asgi",)

Message = dict[str, Any]
_new_tuple = tuple.__new__  # a named tuple made without its Python-level __new__
_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
_CANCELLED = Outcome("cancelled")  # immutable: one for every request that ends so


async def run_asgi(
    mw: Middleware, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Handle one ASGI connection through ``mw`` (this is ``mw.__call__``)."""
    passes = mw.passes_schemes
    # An HTTP request passed on untouched needs no head, unless the head would hold an
    # error: a path that is not ASCII, or a root path to split off (what head_from_scope
    # may refuse). Checked first and inline: this is the whole of the pass-through.
    if (
        passes
        and scope.get("scheme", "http") in passes
        and scope["type"] == "http"
        and scope["path"].isascii()
        and not scope.get("root_path")
    ):
        await mw.app(scope, receive, send)
        return
    kind = scope["type"]
    if kind not in mw.scope_types:
        await mw.app(scope, receive, send)
        return
    if kind == "websocket":
        await _websocket(mw, scope, receive, send)
        return
    http: HTTPScope = scope  # type: ignore[assignment]  # an http scope (no cast(): a call)
    try:
        head = head_from_scope(http)
    except BadRequest as exc:  # a field that cannot be translated: the same 400 for any middleware
        await _send_response(send, bad_request(type(mw).__name__, exc, None, scope))
        return
    if mw.decides:
        await _run_decided(mw, head, http, receive, send)
        return
    try:
        ex = mw.exchange(head, mw.clock())
    except Exception as exc:
        await _send_response(send, failure(type(mw).__name__, exc, "in exchange()", None, head)[0])
        return
    if ex is None:
        await mw.app(scope, receive, send)
        return
    features = features_of(type(ex))
    if not features.request_only:
        await _AsgiRun(mw, ex, send, features).run(http, receive)
        return
    # Request-only exchange: decide, then leave the response path to the app and server.
    try:
        decision, receive = await _decide(ex, receive, features)
    except Exception as exc:
        await _send_response(send, failure(type(mw).__name__, exc, "in request()", ex)[0])
        return
    if isinstance(decision, Respond):
        await _send_response(send, decision.response)
    elif decision.body is not None:
        await _call_with_replay(mw, http, head, decision, receive, send)
    else:
        await mw.app(scope_with_head(http, head, decision.head), receive, send)


async def _call_with_replay(
    mw: Middleware, scope: HTTPScope, head: RequestHead, decision: Forward, receive: Any, send: Any
) -> None:
    """A request-only exchange's replayed body: the app reads it, and sends through the
    server's own ``send``, as for any request-only exchange; the body is closed after."""
    body = cast(ReplayBody, decision.body)
    try:
        app_scope = scope_with_head(scope, head, head_for_body(decision.head, body.length))
        await mw.app(app_scope, replay_receive(body, receive), send)
    finally:
        body.close()


def _run_decided(
    mw: Middleware, head: RequestHead, scope: HTTPScope, receive: Any, send: Any
) -> Awaitable[None]:
    """``mw.decide_request()``: no exchange; the response path is the app's and the server's.

    A plain function returning what to await, so the request costs no coroutine of its own.
    """
    try:
        decided = mw.decide_request(head, mw.clock())
    except Exception as exc:
        return _send_response(
            send, failure(type(mw).__name__, exc, "in decide_request()", None, head)[0]
        )
    if decided is None:
        result: Awaitable[None] = mw.app(scope, receive, send)
    elif isinstance(decided, Response):
        result = _send_response(send, decided)
    else:
        result = mw.app(scope_with_head(scope, head, decided), receive, send)
    return result


async def _decide(ex: Exchange, receive: Any, features: Features) -> tuple[Forward | Respond, Any]:
    """Run ``ex.request()``, awaiting its effects; the decision and the ``receive`` after it."""
    if not features.request:
        return Forward(ex.head), receive
    result = ex.request()
    decision = as_decision(result)
    if decision is None:
        return await _drive_request(result, receive)
    return decision, receive


async def _drive_request(result: Any, receive: Any) -> tuple[Forward | Respond, Any]:
    """A ``request()`` that returned a generator of effects: its decision, and the
    ``receive`` to go on with (see :meth:`_AsgiBody.read_end`)."""
    if not isinstance(result, Generator):
        raise bad_decision(result)
    reader = _AsgiBody(receive)
    decision = await drive_async(result, reader)
    if type(decision) is Forward and decision.body is not None:
        receive = await reader.read_end()
    return decision, receive


async def _websocket(mw: Middleware, scope: Any, receive: Any, send: Any) -> None:
    """A websocket for a middleware that opted in: only the request decision applies.

    ``finish`` runs exactly once whatever happens after the exchange exists
    (handshake refused, the app completing, raising, or being cancelled).
    """
    ex: Exchange | None = None
    outcome = _CANCELLED
    try:
        try:
            head = head_from_scope(scope)
            ex = mw.exchange(head, mw.clock())
            if ex is None:
                decision: Forward | Respond = Forward(head)
            else:
                decision, receive = await _decide(ex, receive, features_of(type(ex)))
        except BadRequest as exc:  # a malformed head: refused, as a Respond is
            outcome = Outcome("responded", None, exc)
            log.warning(
                "refused", scope, "bad request: %s; closed", exc, middleware=type(mw).__name__
            )
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        except Exception as exc:
            outcome = Outcome("middleware_error", None, exc)
            log.error("failed", scope, "raised; closed", exc_info=exc, middleware=type(mw).__name__)
            await receive()
            await send({"type": "websocket.close", "code": 1011})
            return
        if isinstance(decision, Respond):
            outcome = await _refuse_websocket(mw, scope, receive, send, decision.response)
            return
        app_scope = scope_with_head(scope, head, decision.head)
        if ex is not None and mw.websocket_accept_headers and features_of(type(ex)).response:
            send = _AcceptHeaders(mw, ex, send)
        try:
            await mw.app(app_scope, receive, send)
        except OSError as exc:
            outcome = Outcome("disconnected", None, exc)
            raise
        except Exception as exc:
            outcome = Outcome("app_error", None, exc)
            raise
        outcome = Outcome("completed")
    finally:
        if ex is not None and features_of(type(ex)).finish:
            await _finish(mw, ex, outcome, receive)


class _AcceptHeaders:
    """A websocket ``send`` whose handshake answer passes through ``ex.response`` once:

    * ``websocket.accept``: a 101 head of its headers; the accept carries the headers
      ``response`` returns;
    * ``websocket.http.response.start`` (the denial response extension): the app's own
      refusal, whose status and headers ``response`` may rewrite, as for HTTP;
    * ``websocket.close`` before accept: the 403 the server answers with (ASGI spec),
      shown to ``response`` as a head without headers; the close goes out as it is.

    Every later message is sent unchanged. A response hook that raises is logged, and
    the message goes out as the app wrote it: the connection is not the hook's to
    refuse after the decision.
    """

    __slots__ = ("answered", "ex", "mw", "send")

    def __init__(self, mw: Middleware, ex: Exchange, send: Any) -> None:
        self.mw = mw
        self.ex = ex
        self.send = send
        self.answered = False  # the handshake's answer went through response()

    async def __call__(self, message: Any) -> None:
        if not self.answered:
            kind = message.get("type")
            if kind == "websocket.accept":
                message = self._rewritten(message, 101)
            elif kind == "websocket.http.response.start":
                message = self._rewritten(message, message.get("status", 403))
            elif kind == "websocket.close":
                self._shown(ResponseHead(403, ()))  # the server's answer: seen, not sent
        await self.send(message)

    def _rewritten(self, message: Any, status: int) -> Any:
        """``message`` with the status and headers ``response`` gives its head."""
        headers = tuple((bytes(n), bytes(v)) for n, v in message.get("headers") or ())
        head = self._shown(ResponseHead(status, headers))
        if head is None:
            return message
        rewritten = {**message, "headers": list(head.headers)}
        if status != 101:  # an HTTP answer: its status is the hook's, as for HTTP
            rewritten["status"] = head.status
        return rewritten

    def _shown(self, head: ResponseHead) -> ResponseHead | None:
        """``ex.response(head)``, once; None when it raised (logged)."""
        self.answered = True
        try:
            return self.ex.response(head)
        except Exception as exc:
            log.error(
                "failed",
                self.ex.head,
                "raised in response() for a websocket handshake; answered unchanged",
                exc_info=exc,
                middleware=type(self.mw).__name__,
            )
            return None


async def _refuse_websocket(
    mw: Middleware, scope: Any, receive: Any, send: Any, response: Response
) -> Outcome:
    """A refused handshake: ``response`` itself where the middleware asks for it and the
    server offers the denial response extension, else a close before accept (403)."""
    await receive()  # websocket.connect
    extensions = scope.get("extensions") or {}
    if not (mw.websocket_denial_response and "websocket.http.response" in extensions):
        await send({"type": "websocket.close", "code": 1008})  # the server answers 403
        return Outcome("responded")
    start = {"status": response.status, "headers": list(response.headers)}
    await send({"type": "websocket.http.response.start", **start})
    await send({"type": "websocket.http.response.body", "body": response.body})
    return Outcome("responded", response.status)


async def _finish(mw: Middleware, ex: Exchange, outcome: Outcome, receive: Any) -> None:
    """``ex.finish(outcome)`` (a websocket's), its failures logged, never raised."""
    try:
        steps = ex.finish(outcome)
    except Exception as exc:
        log.error(
            "failed", ex.head, "raised in finish()", exc_info=exc, middleware=type(mw).__name__
        )
        return
    if steps is not None:
        await _drive_finish(mw, steps, receive, ex.head)


async def _drive_finish(
    mw: Middleware, steps: Generator[Effect[Any], Any, None], receive: Any, head: RequestHead
) -> None:
    """A ``finish`` hook's effects, awaited shielded from cancellation; failures logged.

    A finish without effects never gets here, so it needs no shield (a cancel
    scope per request costs 2-5 us).
    """
    try:
        with anyio.CancelScope(shield=True):
            await drive_async(steps, _AsgiBody(receive))
    except Exception as exc:
        log.error("failed", head, "raised in finish()", exc_info=exc, middleware=type(mw).__name__)


async def _send_response(send: Any, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": list(response.headers),
        }
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


class _AsgiBody:
    """``RequestBodyIO`` over ``receive``."""

    __slots__ = ("_done", "_receive")

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self._done = False

    def read_sync(self, seconds: float | None) -> bytes:
        raise RuntimeError("the ASGI driver runs effects asynchronously")

    async def read_async(self, seconds: float | None) -> bytes:
        while not self._done:
            if seconds is None:
                message = await self._receive()
            else:
                timed = await receive_within(self._receive, seconds)
                if timed is None:
                    raise BodyTimeout(f"no request body within {seconds:g} s")
                message = timed
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("client closed the connection mid-body")
            self._done = not message.get("more_body", False)
            body: bytes = message.get("body", b"")
            if body or self._done:
                return body
        return b""

    async def read_end(self) -> Any:
        """After a body read to its declared length: take the server's closing message.

        The server has it ready (the length told it the body ended), and an app given
        the replayed body never asks for it: left unread, a test client's body stream
        stays unexhausted. The ``receive`` to go on with: a disconnect seen here is
        kept for the app, which would otherwise never see it.
        """
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return _receive_disconnect
            self._done = not message.get("more_body", False)
        return self._receive


async def _receive_disconnect() -> Message:
    return _DISCONNECT


class _AsgiRun(ResponsePath):
    """Per-request I/O of the ASGI driver; the decisions are those of the
    :class:`ResponsePath` it extends (one object per request, not two)."""

    __slots__ = ("group", "held", "outer_send", "tail")

    def __init__(self, mw: Middleware, ex: Exchange, send: Any, features: Features) -> None:
        ResponsePath.__init__(self, mw, ex, features)
        self.outer_send = send
        self.held: Message | None = None
        self.group: anyio.abc.TaskGroup | None = None  # while a response_body app runs (trio)
        self.tail: AsyncioTail | None = None  # while a response_body app runs (asyncio)

    async def run(self, scope: HTTPScope, receive: Any) -> None:
        # One coroutine for deciding, forwarding and calling the app: a frame per step
        # would cost more than the steps themselves for the usual header-only exchange.
        ex = self.ex
        features = self.features
        request_receive = receive  # what effects of finish() read (not a replayed body)
        outcome: Outcome | None = _CANCELLED  # None: ended as self.outcome() tells
        try:
            app_scope: HTTPScope = scope  # nothing to decide: the request goes on as it is
            app_receive = receive
            if features.request:
                try:
                    result = ex.request()
                    decision = as_decision(result)
                    if decision is None:
                        decision, receive = await _drive_request(result, receive)
                except Exception as exc:
                    await _send_response(self.outer_send, self.request_failed(exc))
                    outcome = None
                    return
                if type(decision) is Respond:
                    await _send_response(self.outer_send, self.responded(decision.response))
                    outcome = None
                    return
                forward: Forward = decision  # type: ignore[assignment]  # not a Respond (no cast(): a call)
                head, body = forward
                app_receive = receive
                if body is not None:
                    head = self.forward(head, body)
                    app_receive = replay_receive(body, app_receive)
                app_scope = scope_with_head(scope, ex.head, head)
            if features.request_body:
                app_receive = self.filtered_receive(app_receive)
            try:
                if features.response_body:
                    await self.call_app_beside_tail(app_scope, app_receive)
                else:
                    await self.mw.app(app_scope, app_receive, self.send)
            except Exception as exc:
                if self.app_head_sent:
                    raise
                response = self.app_failed(exc)
                if response is not None:
                    await _send_response(self.outer_send, response)
                outcome = None
                return
            if self.status is None:
                # Nothing sent yet: the app returned without a response, or without its body.
                what = "a response" if self.held is None else "its response body"
                await _send_response(self.outer_send, self.app_returned_early(what))
            outcome = None
        except Exception as exc:
            outcome = self.outcome(exc)
            raise
        finally:
            # Nothing to finish (no finish hook, no replayed body): no outcome is made.
            if features.finish or self.replay is not None:
                steps = self.finish(self.outcome() if outcome is None else outcome)
                if steps is not None:
                    await _drive_finish(self.mw, steps, request_receive, ex.head)

    async def call_app_beside_tail(self, scope: HTTPScope, receive: Any) -> None:
        """The app, next to a task for a long ``response_body`` tail if one turns up."""
        try:
            host = asyncio.current_task()
        except RuntimeError:  # no asyncio loop: trio
            host = None
        if host is None:
            await self.call_app_in_group(scope, receive)
            return
        self.tail = AsyncioTail(host)
        try:
            await self.tail.run(self.mw.app(scope, receive, self.send))
        finally:
            self.tail = None

    async def call_app_in_group(self, scope: HTTPScope, receive: Any) -> None:
        """The app next to the task that may send a long ``response_body`` tail."""
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                self.group = group
                try:
                    await self.mw.app(scope, receive, self.send)
                except Exception as exc:
                    error = exc
        except ExceptionGroup as failed:  # the tail task failed (e.g. the client is gone)
            errors = failed.exceptions
            raise (errors[0] if len(errors) == 1 else failed) from None
        finally:
            self.group = None
        if error is not None:
            raise error

    # -- the app's send --

    async def send(self, message: Any) -> None:
        replaced = self.replaced  # a local: the field is read again after sending the head
        if replaced is not None:
            return  # our response went out instead of the app's
        kind = message["type"]
        if kind == "http.response.body":
            if self.held is None:
                raise RuntimeError(f"the app sent {kind!r} before http.response.start")
            if self.body_hook:
                await self.send_hooked(message)
                return
            more = message.get("more_body", False)
            if self.status is None:
                if not more or message.get("body"):
                    await self.flush_head()
                    if self.replaced is not None:  # dropped: our response went instead
                        return
                else:
                    return  # an empty chunk with more to come: the head stays held
            self.ended = not more
            await self.outer_send(message)
            return
        if kind == "http.response.start":
            if self.held is not None:
                raise RuntimeError("the app sent http.response.start twice")
            self.held = message
            if self.features.response_start:
                self.started(self.held_head())
                if self.refused:
                    await self.flush_head()
            return
        if self.held is None:
            raise RuntimeError(f"the app sent {kind!r} before http.response.start")
        # trailers, pathsend, ...: after the head
        if self.status is None:
            await self.flush_head()
        if not self.dropped:
            await self.outer_send(message)

    def held_head(self) -> ResponseHead:
        """The app's held ``http.response.start`` as a head."""
        held: Message = self.held  # type: ignore[assignment]  # set before any body
        lines = tuple(held.get("headers", ()))
        for line in lines:
            if type(line) is not tuple:  # lists (ASGI allows them): the head holds tuples
                lines = tuple(map(tuple, lines))
                break
        head: ResponseHead = _new_tuple(
            ResponseHead, (held["status"], lines, bool(held.get("trailers", False)))
        )
        return head

    async def send_hooked(self, message: Any) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        chunks = self.response_body(body, True)
        tail = None if more else self.response_body(b"", False)
        if self.refused:
            await self.flush_head()
            return
        if tail is None:
            await self.send_chunks(chunks)
            return
        tail_iter = iter(tail)
        first = next(tail_iter, None)
        while first is not None and not first:  # empty chunks are skipped anyway
            first = next(tail_iter, None)
        if first is None:  # nothing held back: the end rides on the last chunk
            await self.send_last(chunks)
            return
        await self.send_chunks(chunks)
        # The tail is sent after the app is released: its last send returns now,
        # or after an inline send of at most INLINE_FLUSH bytes (no waiting, no task).
        pending, size = [first], len(first)
        while size <= INLINE_FLUSH:
            chunk = next(tail_iter, None)
            if chunk is None:
                await self.send_tail(pending, tail_iter)
                return
            pending.append(chunk)
            size += len(chunk)
        if self.tail is not None:
            self.tail.start(self.send_tail(pending, tail_iter))
        elif self.group is not None:
            self.group.start_soon(self.send_tail, pending, tail_iter)
        else:  # pragma: no cover - one of them is set while a response_body app runs
            await self.send_tail(pending, tail_iter)

    async def send_tail(self, head: list[bytes], rest: Iterator[bytes]) -> None:
        """The held tail, then the end of the body (one coroutine: it runs per response)."""
        if self.status is None:
            await self.flush_head()
        if self.dropped:
            return
        send = self.outer_send
        for chunk in itertools.chain(head, rest):
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        self.ended = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send_chunks(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if not chunk:
                continue
            if self.status is None:
                await self.flush_head()
            if self.dropped:
                return
            await self.outer_send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def send_last(self, chunks: Iterable[bytes]) -> None:
        """``chunks``, the last one ending the body (an empty message when there is none)."""
        last = b""
        for chunk in chunks:
            if chunk:
                if last:
                    await self.send_chunks((last,))
                last = chunk
        if self.status is None:
            await self.flush_head()
        if self.dropped:
            return
        self.ended = True
        await self.outer_send({"type": "http.response.body", "body": last, "more_body": False})

    def flush_head(self) -> Awaitable[None]:
        """The head the path decides on: the app's, rewritten, or a whole response instead.

        A plain function returning what to await: no coroutine of its own per response."""
        held: Message = self.held  # type: ignore[assignment]  # set before any body
        decided = self.send_head(held["status"])
        sent: Awaitable[None]
        if decided is None:
            sent = self.outer_send(held)
        elif type(decided) is ResponseHead:
            message = held.copy()
            message["status"] = decided.status
            message["headers"] = list(decided.headers)
            sent = self.outer_send(message)
        else:
            sent = _send_response(self.outer_send, cast(Response, decided))
        return sent

    # -- the app's receive --

    def filtered_receive(self, inner: Any) -> Any:
        timeout = self.ex.request_read_timeout

        async def filtered() -> Message:
            if self.abort is not None:
                return _DISCONNECT
            if timeout is None:
                message: Message = await inner()
            else:
                timed = await receive_within(inner, timeout)
                if timed is None:
                    self.read_timed_out()
                    return _DISCONNECT
                message = timed
            if message["type"] == "http.request" and not self.request_chunk(
                message.get("body", b""), message.get("more_body", False)
            ):
                return _DISCONNECT
            return message

        return filtered


def replay_receive(body: ReplayBody, receive: Any) -> Any:
    """A ``receive`` that gives the app ``body``, then waits for the real disconnect."""
    chunks: Iterator[bytes] = iter(body.chunks())
    pending: bytes | None = next(chunks, b"")

    async def replay() -> Message:
        nonlocal pending
        if pending is not None:
            current, pending = pending, next(chunks, None)
            return {"type": "http.request", "body": current, "more_body": pending is not None}
        while True:  # the body was replaced: wait for the real disconnect
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return message

    return replay
