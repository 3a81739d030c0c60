"""The WSGI driver: runs a middleware's exchange around a PEP 3333 app.

Invariants:

* The outer ``start_response`` is called exactly once, just before the first
  non-empty body chunk leaves (or when the body turns out empty), so an app
  that fails before its body is answered with the same 500 as under ASGI.
  A request-only exchange (no response-side hook) hands the app the server's
  own ``start_response`` and adds nothing to the response path.
* The app's iterable is always closed, and ``Exchange.finish`` runs exactly
  once, on every path.
* The caller's environ is never mutated (a rewritten head gives a copy).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

from bridge._http.headers import HOP_BY_HOP, parse_length
from bridge._http.status import status_line
from bridge._http.translate import BadRequest, undelivered_body
from bridge._http.types import Environ, ExcInfo, StartResponse, WsgiHeaders
from bridge._loop.green import cross_thread_wait
from bridge._loop.threads import worker_pool
from bridge.middleware._core.drive import bad_request, drive_sync, failure, log
from bridge.middleware._core.exchange import (
    BodyTimeout,
    ClientDisconnected,
    Exchange,
    Features,
    Forward,
    Outcome,
    ReplayBody,
    RequestBodyAborted,
    Respond,
    as_decision,
    bad_decision,
    features_of,
)
from bridge.middleware._core.heads import (
    RequestHead,
    Response,
    ResponseHead,
    environ_translates,
    environ_with_head,
    head_for_body,
    head_from_environ,
    keep_headers_apart,
)
from bridge.middleware._core.response_path import ResponsePath
from bridge.middleware._core.wsgi_read import timed_reader

if TYPE_CHECKING:
    from bridge.middleware._core.base import Middleware

__all__ = ("run_wsgi",)

_CHUNK = 65536
_new_tuple = tuple.__new__  # a named tuple made without its Python-level __new__
NO_SPELLINGS: Final[Mapping[bytes, str]] = MappingProxyType({})


def run_wsgi(mw: Middleware, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Handle one WSGI request through ``mw`` (this is ``mw.__call__``)."""
    passes = mw.passes_schemes
    # A request passed on untouched needs no head, unless the head would hold an error.
    if passes and environ.get("wsgi.url_scheme", "http") in passes and environ_translates(environ):
        passed: Iterable[bytes] = mw.app(environ, start_response)
        return passed
    try:
        head = head_from_environ(environ)
    except BadRequest as exc:  # a field that cannot be translated: the same 400 for any middleware
        return _respond(start_response, bad_request(type(mw).__name__, exc, None, environ))
    if mw.decides:
        return _run_decided(mw, head, environ, start_response)
    try:
        ex = mw.exchange(head, mw.clock())
    except Exception as exc:
        return _respond(
            start_response, failure(type(mw).__name__, exc, "in exchange()", None, head)[0]
        )
    if ex is None:
        result: Iterable[bytes] = mw.app(environ, start_response)
        return result
    features = features_of(type(ex))
    if not features.request_only:
        return _WsgiRun(mw, ex, environ, start_response, features).run()
    # Request-only exchange: decide, then leave the response path to the app and server.
    try:
        decision = _decide(ex, environ, features)
    except Exception as exc:
        return _respond(start_response, failure(type(mw).__name__, exc, "in request()", ex)[0])
    if isinstance(decision, Respond):
        return _respond(start_response, decision.response, mw.header_spellings)
    if decision.body is not None:
        return _call_with_replay(mw, environ, head, decision, start_response)
    result = mw.app(environ_with_head(environ, head, decision.head), start_response)
    return result


def _call_with_replay(
    mw: Middleware,
    environ: Environ,
    head: RequestHead,
    decision: Forward,
    start_response: StartResponse,
) -> Iterable[bytes]:
    """A request-only exchange's replayed body: the app reads it and answers through the
    server's own ``start_response``, as for any request-only exchange; the body is
    closed when the app's iterable is (or when the app raises)."""
    body = cast(ReplayBody, decision.body)
    try:
        app_head = head_for_body(decision.head, body.length)
        app_environ = with_replay(environ_with_head(environ, head, app_head), environ, body)
        result: Iterable[bytes] = mw.app(app_environ, start_response)
    except BaseException:
        body.close()
        raise
    if not body.needs_close:
        return result  # bytes in memory: nothing to release
    return _ClosingBody(result, body)


def with_replay(environ: Environ, original: Environ, body: ReplayBody) -> Environ:
    """``environ`` (copied if it is still ``original``) reading ``body`` as its input."""
    if environ is original:
        environ = dict(environ)
    environ["wsgi.input"] = body.open()
    environ["wsgi.input_terminated"] = True
    return environ


class _ClosingBody:
    """The app's iterable, passed through; ``close()`` also releases the replayed body."""

    __slots__ = ("_body", "_inner")

    def __init__(self, inner: Iterable[bytes], body: ReplayBody) -> None:
        self._inner = inner
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        try:
            _close(self._inner)
        finally:
            self._body.close()


def _run_decided(
    mw: Middleware, head: RequestHead, environ: Environ, start_response: StartResponse
) -> Iterable[bytes]:
    """``mw.decide_request()``: no exchange; the response path is the app's and the server's."""
    try:
        decided = mw.decide_request(head, mw.clock())
    except Exception as exc:
        return _respond(
            start_response, failure(type(mw).__name__, exc, "in decide_request()", None, head)[0]
        )
    if decided is None:
        result: Iterable[bytes] = mw.app(environ, start_response)
    elif isinstance(decided, Response):
        result = _respond(start_response, decided, mw.header_spellings)
    else:
        result = mw.app(environ_with_head(environ, head, decided), start_response)
    return result


def _decide(ex: Exchange, environ: Environ, features: Features) -> Forward | Respond:
    """Run ``ex.request()``, driving its effects synchronously."""
    if not features.request:
        return Forward(ex.head)
    result = ex.request()
    decision = as_decision(result)
    if decision is None:
        if not isinstance(result, Generator):
            raise bad_decision(result)
        decision = drive_sync(result, _WsgiBody(environ))
    return decision


def _respond(
    start_response: StartResponse, response: Response, spelled: Mapping[bytes, str] = NO_SPELLINGS
) -> list[bytes]:
    # PEP 3333: the WSGI server owns the connection, so no hop-by-hop header goes out
    headers = [
        (spelled.get(k) or k.decode("latin-1"), v.decode("latin-1"))
        for k, v in response.headers
        if k.lower() not in HOP_BY_HOP
    ]
    start_response(status_line(response.status), headers)
    return [response.body]


# -- request body access -------------------------------------------------------


def timed_read(read: Any, size: int, timeout: float) -> bytes:
    """``read(size)`` in one of bridge's worker threads, abandoned after ``timeout`` seconds.

    The pool's idle threads retire (at most a few stay), so a burst of slow uploads
    leaves no threads behind; an abandoned read keeps its thread until the server
    closes the connection under it.
    """
    future = worker_pool().submit(read, size)
    try:
        with cross_thread_wait():  # under gevent: a greenlet's wait yields to its hub
            data: bytes = future.result(timeout)
            return data
    except TimeoutError:
        raise BodyTimeout(f"no request body within {timeout:g} s") from None


def _content_length(environ: Environ) -> int | None:
    return parse_length(str(environ.get("CONTENT_LENGTH") or ""))


class _WsgiBody:
    """``RequestBodyIO`` over ``wsgi.input``: honours CONTENT_LENGTH, never over-reads."""

    __slots__ = ("_chunked", "_input", "_remaining", "_terminated", "_timed")

    def __init__(self, environ: Environ) -> None:
        self._timed = timed_reader(environ, timed_read)
        self._input = environ["wsgi.input"]
        self._remaining = _content_length(environ)
        self._terminated = bool(environ.get("wsgi.input_terminated"))
        self._chunked = bool(environ.get("HTTP_TRANSFER_ENCODING"))

    def read_sync(self, seconds: float | None) -> bytes:
        if self._remaining is None and not self._terminated:
            if self._chunked:  # a body the server cannot deliver (wsgiref): refused, not lost
                raise undelivered_body()
            return b""  # PEP 3333: no CONTENT_LENGTH means no body
        size = _CHUNK if self._remaining is None else min(_CHUNK, self._remaining)
        if size == 0:
            return b""
        read = self._input.read
        try:
            chunk: bytes = read(size) if seconds is None else self._timed(read, size, seconds)
        except (BodyTimeout, ClientDisconnected):
            raise
        except OSError as exc:  # servers differ: a reset, an incomplete read...
            raise ClientDisconnected(f"request body read failed: {exc}") from exc
        except Exception as exc:  # the server's own parse error (gunicorn: a bad chunk size)
            raise BadRequest(f"request body could not be read: {exc!r}") from exc
        if self._remaining is not None:
            if not chunk:
                raise ClientDisconnected("client closed the connection mid-body")
            self._remaining -= len(chunk)
        return chunk

    async def read_async(self, seconds: float | None) -> bytes:
        raise RuntimeError("the WSGI driver runs effects synchronously")


class _FilteredInput:
    """``wsgi.input`` that shows each chunk to ``Exchange.request_body``."""

    def __init__(self, path: ResponsePath, environ: Environ, length: int | None) -> None:
        self._path = path
        self._inner = environ["wsgi.input"]
        self._remaining = length
        self._timeout = path.ex.request_read_timeout
        self._timed = timed_reader(environ, timed_read)

    def _see(self, chunk: bytes) -> bytes:
        if self._remaining is not None:
            self._remaining -= len(chunk)
            more = self._remaining > 0 and bool(chunk)
        else:
            more = bool(chunk)
        path = self._path
        if not path.request_chunk(chunk, more):
            status = path.abort.status if path.abort is not None else 400
            raise RequestBodyAborted(f"request body refused with {status}")
        return chunk

    def _read(self, method: Any, size: int) -> bytes:
        if self._path.abort is not None:
            raise RequestBodyAborted("request body already refused")
        if self._timeout is None:
            return self._see(method(size))
        try:
            return self._see(self._timed(method, size, self._timeout))
        except BodyTimeout:
            self._path.read_timed_out()
            raise RequestBodyAborted("request body read timed out") from None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self._read(self._inner.read, _CHUNK), b""))
        return self._read(self._inner.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._read(self._inner.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


# -- one request ----------------------------------------------------------------


class _WsgiRun(ResponsePath):
    """Per-request I/O of the WSGI driver; the decisions are those of the
    :class:`ResponsePath` it extends (one object per request, not two)."""

    __slots__ = (
        "app_closed",
        "environ",
        "held",
        "outer_start",
        "outer_write",
        "pending",
    )

    def __init__(
        self,
        mw: Middleware,
        ex: Exchange,
        environ: Environ,
        start_response: StartResponse,
        features: Features,
    ) -> None:
        ResponsePath.__init__(self, mw, ex, features)
        self.environ = environ
        self.outer_start = start_response
        self.held: tuple[str, WsgiHeaders] | None = None
        self.pending: list[bytes] = []
        self.outer_write: Any = None
        self.app_closed = False

    def run(self) -> Iterable[bytes]:
        if not self.features.request:  # nothing to decide: the request goes on as it is
            return self.forward_to_app(self.ex.head, None)
        try:
            decision = _decide(self.ex, self.environ, self.features)
        except Exception as exc:
            return self.respond(self.request_failed(exc))
        if isinstance(decision, Respond):
            return self.respond(self.responded(decision.response))
        return self.forward_to_app(decision.head, decision.body)

    def forward_to_app(self, head: RequestHead, body: ReplayBody | None) -> Iterable[bytes]:
        environ = self.environ
        if body is not None or head is not self.ex.head:  # else: the app gets the caller's
            environ = environ_with_head(environ, self.ex.head, self.forward(head, body))
        if environ is self.environ:
            keep_headers_apart(self.ex.head)  # the app may change its environ in place
        if body is not None:
            environ = with_replay(environ, self.environ, body)
        if self.features.request_body:  # wsgi.input through request_body
            if environ is self.environ:
                environ = dict(environ)
            length = _content_length(environ)
            environ["wsgi.input"] = _FilteredInput(self, environ, length)
        return self.call_app(environ)

    # -- the app's side of start_response --

    def start_response(
        self, status: str, headers: WsgiHeaders, exc_info: ExcInfo | None = None
    ) -> Any:
        if exc_info is not None and exc_info[1] is not None and self.status is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        if self.held is not None and exc_info is None:
            raise RuntimeError("start_response called twice without exc_info")
        self.held = (status, headers)
        if self.features.response_start:
            self.started(self.held_head())
        else:
            self.app_head = None
        return self.write

    def held_head(self) -> ResponseHead:
        """The app's held status and lines as a head."""
        status, headers = self.held  # type: ignore[misc]  # set before the head is sent
        # Never memoised: an app's lines carry per-request values (Set-Cookie), which no
        # process-wide cache may hold. One comprehension, no call per line.
        lines = tuple([(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers])
        head: ResponseHead = _new_tuple(ResponseHead, (int(status[:3]), lines, False))
        return head

    def write(self, data: bytes) -> None:
        # Legacy write(): through response_body like any chunk; held with the head
        # until the head is sent, then passed straight to the server.
        chunks: Iterable[bytes] = (data,)
        if self.body_hook:
            chunks = self.response_body(data, True)
        if self.outer_write is None:
            self.pending.extend(chunks)
            return
        for chunk in chunks:
            if chunk:
                self.outer_write(chunk)

    # -- running the app --

    def call_app(self, environ: Environ) -> Iterable[bytes]:
        try:
            iterable = self.mw.app(environ, self.start_response)
        except Exception as exc:
            return self.app_raised(exc, None)
        try:
            chunks: Iterator[bytes] = iter(iterable)
            # Started, and its body passes unchanged: no response_body per chunk, unless a
            # restart turns it on while the first chunk is read (see first_chunk).
            watch = self.features.response_body and self.held is not None and not self.body_hook
            if self.features.response_body and not watch:
                chunks = _hooked(self, chunks, iterable)
            first, chunks = self.first_chunk(chunks, iterable, watch)
        except Exception as exc:
            return self.app_raised(exc, iterable)
        if self.held is None:
            self.close_app(iterable)
            return self.respond(self.app_returned_early("calling start_response"))
        replacement = self.flush_head()
        if replacement is not None:
            self.close_app(iterable)
            return self.respond(replacement)
        if first is None:
            self.close_app(iterable)
            self.ended = True
            self.finish_once(self.outcome())
            return []
        features = self.features
        if features.finish or self.body_hook or self.replay is not None:
            return _Body(self, first, chunks, iterable)
        # Nothing to tell at the end: the rest of the body needs no Python-level wrapper.
        self.finished = True
        if type(iterable) is list or type(iterable) is tuple:  # no close() to call
            return [first, *chunks]
        return _PlainBody(first, chunks, iterable)

    def close_app(self, iterable: Iterable[bytes]) -> None:
        """Close the app's iterable, once (it may be released before the body is served)."""
        if not self.app_closed:
            self.app_closed = True
            _close(iterable, self.environ)

    def first_chunk(
        self, chunks: Iterator[bytes], iterable: Iterable[bytes], watch: bool
    ) -> tuple[bytes | None, Iterator[bytes]]:
        """The first non-empty chunk (bytes given to ``write()`` so far come first) and the
        chunks after it. ``watch``: ``chunks`` skip ``response_body`` because the body
        passed unchanged; a restart (``exc_info``) that turns it on while they are read
        hooks the chunk read with it and every later one, as :func:`_hooked` does (the head
        leaves right after this, so no later restart can)."""
        for chunk in chunks:
            if watch and self.body_hook:
                hooked = _hooked(self, itertools.chain((chunk,), chunks), iterable)
                return self.first_chunk(hooked, iterable, False)
            if self.pending:
                chunk = self.take_pending() + chunk
            if chunk:
                return chunk, chunks
        if watch and self.body_hook:  # restarted while the body ended: the hook's tail
            return self.first_chunk(_hooked(self, iter(()), iterable), iterable, False)
        return self.take_pending() or None, chunks

    def take_pending(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data

    def flush_head(self) -> Response | None:
        """Send the head the path decides on; a response to send instead is returned."""
        status, headers = self.held  # type: ignore[misc]  # checked by the caller
        decided = self.send_head(int(status[:3]))
        if isinstance(decided, Response):
            return decided
        if decided is not None:
            if decided.status != int(status[:3]):
                status = status_line(decided.status)
            spelled = self.mw.header_spellings
            headers = _text_lines(headers, self.app_head, decided.headers, spelled)
        self.outer_write = self.outer_start(status, headers)
        return None

    def app_raised(self, exc: Exception, iterable: Iterable[bytes] | None) -> list[bytes]:
        if iterable is not None:
            self.close_app(iterable)
        response = self.app_failed(exc)
        return [] if response is None else self.respond(response)

    def respond(self, response: Response) -> list[bytes]:
        """Send ``response`` (the path has recorded it), then finish."""
        try:
            body = _respond(self.outer_start, response, self.mw.header_spellings)
        finally:
            self.finish_once(self.outcome())
        return body

    def finish_once(self, outcome: Outcome) -> None:
        try:
            steps = self.finish(outcome)
            if steps is not None:
                drive_sync(steps, _WsgiBody(self.environ))
        except Exception as exc:
            who = type(self.mw).__name__
            log.error("failed", self.environ, "raised in finish()", exc_info=exc, middleware=who)


def _text_lines(
    original: WsgiHeaders,
    seen: ResponseHead | None,
    after: tuple[tuple[bytes, bytes], ...],
    spelled: Mapping[bytes, str],
) -> WsgiHeaders:
    """``after`` as WSGI text pairs, names the middleware set in their ``spelled`` case.
    When it extends the app's own lines (as converted for ``seen``, the head the hooks
    saw), the app's text lines are reused as they are."""
    kept = len(original)
    if seen is not None and after[:kept] == seen.headers:
        added = after[kept:]
        return [
            *original,
            *[(spelled.get(k) or k.decode("latin-1"), v.decode("latin-1")) for k, v in added],
        ]
    return [(spelled.get(k) or k.decode("latin-1"), v.decode("latin-1")) for k, v in after]


def _hooked(run: _WsgiRun, chunks: Iterator[bytes], iterable: Iterable[bytes]) -> Iterator[bytes]:
    """The app's chunks through ``response_body``; the tail is served after the app is closed.
    Stops at a refusal: the app's response will not be sent. Passes the chunks as they are
    once ``response_start`` said the body passes unchanged (it is called before the first
    chunk: PEP 3333 has the app start its response first)."""
    for chunk in chunks:
        if not run.body_hook:
            yield chunk
            yield from chunks
            return
        yield from run.response_body(chunk, True)
        if run.refused:
            return
    if not run.body_hook:
        return
    tail = run.response_body(b"", False)
    run.close_app(iterable)  # the app is released before the client reads the tail
    yield from tail


def _close(iterable: Iterable[bytes], environ: Environ | None = None) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            log.error("failed", environ, "the app's iterable raised in close()", exc_info=exc)


class _Body:
    """The response iterable handed to the server after the head was sent."""

    __slots__ = ("_chunks", "_first", "_inner", "_outcome", "_run")

    def __init__(
        self, run: _WsgiRun, first: bytes, chunks: Iterator[bytes], inner: Iterable[bytes]
    ) -> None:
        self._run = run
        self._first: bytes | None = first
        self._chunks = chunks
        self._inner = inner
        self._outcome: Outcome | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        run = self._run
        try:
            return next(self._chunks)
        except StopIteration:
            run.ended = True
            self._outcome = run.outcome()
            raise
        except Exception as exc:
            self._outcome = run.outcome(exc)
            raise

    def close(self) -> None:
        try:
            self._run.close_app(self._inner)
        finally:
            self._run.finish_once(self._outcome or self._run.cut_short())


class _PlainBody:
    """The rest of the app's body for an exchange with no body or finish hook.

    Iterating it is C-level (``itertools.chain``); ``close()`` closes the app's iterable.
    """

    __slots__ = ("_chunks", "_inner")

    def __init__(self, first: bytes, chunks: Iterator[bytes], inner: Iterable[bytes]) -> None:
        self._chunks = itertools.chain((first,), chunks)
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        _close(self._inner)
