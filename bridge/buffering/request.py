"""``RequestBuffering``: body size cap, body read timeout, and buffering before the app.

Two exchanges are the whole middleware; ``RequestBuffering.exchange`` picks one
per request from the matching rule's ``mode``:

* :class:`BufferingExchange` decides from the request head (400/413 before
  reading), reads the body through :class:`ReadBody` effects (the WSGI driver
  reads ``wsgi.input``, the ASGI driver awaits ``receive``, each with the read
  timeout) into a :class:`Spool`, and forwards a replayable body, which the
  driver announces with a Content-Length. The spool is owned by the driver
  once forwarded and closed by ``_buffer`` on every other path, so no
  temporary file outlives its request.
* In ``"stream"`` mode the head is decided the same way in ``exchange`` itself
  (:func:`stream_exchange`): an ``Answer`` (the refusal), nothing at all when there is
  nothing to watch, or a :class:`StreamingExchange`, which counts what the app
  reads (``request_body``) and lets the driver time each read.

Every rejection is logged once (logger ``bridge.buffering``) and answered with
the short response of :mod:`._replies`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Iterable
from typing import IO, Any, Final, cast

from bridge._http.errors import ErrorFormat, check_error_format
from bridge._http.logfields import EventLog
from bridge._http.translate import BadRequest
from bridge.buffering._account import BodyAccount, BodyRejected
from bridge.buffering._replies import render
from bridge.buffering._rules import (
    BodyLimits,
    Mode,
    RequestBufferingRule,
    app_path,
    compile_limits,
    limits_for,
)
from bridge.buffering._rules import make_limits as _make_limits
from bridge.buffering._spool import ChunkReader, Spool, SpoolRefused
from bridge.middleware import (
    Abort,
    Answer,
    BodyTimeout,
    ClientDisconnected,
    Effect,
    Exchange,
    Forward,
    Interface,
    Middleware,
    ReadBody,
    ReplayBody,
    RequestHead,
    Respond,
    Response,
)

__all__ = ("RequestBuffering",)

logger = logging.getLogger("bridge.buffering")
log: Final = EventLog(logger, "RequestBuffering")

_SPOOL_STATUSES: Final = (500, 503)


class _Config:
    """Validated, precomputed options shared by every request."""

    __slots__ = (
        "base",
        "clock",
        "close_connection",
        "error_format",
        "rules",
        "spool_dir",
        "spool_error_status",
    )

    def __init__(
        self,
        *,
        max_body_size: int | str | None,
        body_timeout: float | None,
        body_deadline: float | None,
        mode: Mode,
        memory_size: int | str,
        rules: Iterable[RequestBufferingRule],
        error_format: ErrorFormat,
        spool_dir: str | os.PathLike[str] | None,
        spool_error_status: int,
        clock: Callable[[], float],
        close_connection: bool,
    ) -> None:
        self.base = _make_limits(
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            body_deadline=body_deadline,
            mode=mode,
            memory_size=memory_size,
        )
        self.rules = compile_limits(self.base, rules)
        if spool_error_status not in _SPOOL_STATUSES:
            raise ValueError(f"spool_error_status must be 503 or 500, got {spool_error_status!r}")
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds, like time.monotonic")
        self.error_format: ErrorFormat = check_error_format(error_format)
        self.spool_dir = spool_dir
        self.spool_error_status = spool_error_status
        self.clock = clock
        self.close_connection = close_connection

    def limits(self, head: RequestHead) -> BodyLimits:
        if not self.rules:
            return self.base
        return limits_for(self.base, self.rules, head.method, app_path(head.path, head.root_path))

    def reject(self, head: RequestHead, rejection: BodyRejected) -> Response:
        """Log one line naming the problem and build the documented response."""
        log.warning(
            "refused",
            head,
            "%d %s: %s",
            rejection.status,
            rejection.title,
            rejection.detail,
        )
        return self.response(rejection)

    def response(self, rejection: BodyRejected) -> Response:
        reply = render(rejection, self.error_format, close=self.close_connection)
        return Response(reply.status, reply.headers, reply.body)


def printable(path: str) -> str:
    """``path`` for a log line: escaped when it holds control characters (log injection)."""
    return path if path.isprintable() else repr(path)


#: HTTP versions whose bodies are framed by Content-Length or chunking (HTTP/2 and 3
#: frame bodies themselves, so a body may come with neither header).
_DELIMITED_BY_LENGTH: Final = ("1.1", "1.0")


def open_account(head: RequestHead, limits: BodyLimits, now: float) -> BodyAccount:
    """The body account of ``head``; :class:`BodyRejected` for a head that cannot have one."""
    # A Content-Length the head refuses raises BadRequest here, which the caller answers
    # as a 400 of this middleware's. Only the two framing lines are read: a head reads
    # one line without translating the others, and holds one line per name.
    length = head.header(b"content-length")
    chunked = head.header(b"transfer-encoding") is not None
    self_framed = head.http_version not in _DELIMITED_BY_LENGTH
    return BodyAccount.framed(length, chunked, limits, now, self_framed)


def _bad_request(ex: BufferingExchange | StreamingExchange, error: BadRequest) -> Response:
    """A malformed head, answered in the configured format with this module's one log line."""
    return ex.config.reject(ex.head, BodyRejected(error.status, str(error)))


class BufferingExchange(Exchange):
    """One request in ``"buffer"`` mode: read it all, then forward a replayable body.

    It overrides ``request`` only, so the drivers add nothing to the app's
    reads or to the response; the spool is closed by the driver (through the
    :class:`ReplayBody`) or, on every other path, by ``_buffer`` itself.
    """

    __slots__ = ("config", "limits")

    def __init__(self, head: RequestHead, now: float, config: _Config, limits: BodyLimits) -> None:
        super().__init__(head, now)
        self.config = config
        self.limits = limits

    def request(self) -> Forward | Respond | Generator[Effect[Any], Any, Forward | Respond]:
        try:
            account = open_account(self.head, self.limits, self.now)
        except BodyRejected as rejection:
            return Respond(self.config.reject(self.head, rejection))
        if not account.expects_body:
            return Forward(self.head)
        return self._buffer(account)

    def _buffer(self, account: BodyAccount) -> Generator[Effect[Any], Any, Forward | Respond]:
        spool = Spool(self.limits.memory_size, self.config.spool_dir)
        replay: ReplayBody | None = None
        try:
            yield from self._read_into(account, spool)
            account.finish()
            # From here the driver owns the file (through the ReplayBody) and closes
            # it when the request ends; it also announces the replayed body
            # (Content-Length, no Transfer-Encoding). An unframed head whose body
            # turned out empty already says "no body": the driver leaves it as it is.
            replay = self._replay(spool)
            return Forward(self.head, replay)
        except BodyRejected as rejection:
            return Respond(self.config.reject(self.head, rejection))
        except SpoolRefused as error:
            return Respond(self._spool_refused(error))
        finally:  # rejected, refused, failed, or closed because the request was cancelled
            if replay is None:
                spool.close()

    def _read_into(self, account: BodyAccount, spool: Spool) -> Generator[Effect[Any], Any, None]:
        clock = self.config.clock if self.limits.body_deadline is not None else None
        read = ReadBody(self.limits.body_timeout)  # the same effect for every chunk...
        declared = account.declared
        # A declared length that has arrived is the end: no read just to see b"".
        while declared is None or account.received < declared:
            if clock is not None:  # ...unless a deadline shortens each wait
                read = ReadBody(account.read_timeout(clock()))
            try:
                chunk: bytes = yield read
            except BodyTimeout:
                raise account.timed_out() from None
            except ClientDisconnected:
                raise account.disconnected() from None
            except BadRequest as error:  # the server refused the body (a bad chunk size)
                raise BodyRejected(error.status, str(error)) from None
            if not chunk:
                break
            account.add(len(chunk))
            spool.write(chunk)
        if clock is not None:  # a read that ended past the deadline still misses it
            account.check_deadline(clock())

    bad_request = _bad_request

    @staticmethod
    def _replay(spool: Spool) -> ReplayBody:
        if spool.on_disk:
            return ReplayBody(spool.reader(), spool.size)
        chunks = spool.memory_chunks()
        if len(chunks) <= 1:
            return ReplayBody(chunks[0] if chunks else b"")
        reader = cast("IO[bytes]", ChunkReader(chunks))  # a binary file, as ReplayBody wants
        return ReplayBody(reader, spool.size)  # no join: replayed chunk by chunk

    def _spool_refused(self, error: SpoolRefused) -> Response:
        status = self.config.spool_error_status
        log.error("failed", self.head, "%d: %s", status, error)
        rejection = BodyRejected(status, "the request body could not be stored", close=False)
        return self.config.response(rejection)


def stream_exchange(
    head: RequestHead, now: float, config: _Config, limits: BodyLimits
) -> StreamingExchange | Answer | None:
    """The exchange of a ``"stream"`` request, its head already checked: a
    ``Answer`` of the refusal for a head refused (400, 413), None when there is nothing to
    watch, else a :class:`StreamingExchange`.

    Nothing to watch: no ``body_timeout`` and no ``body_deadline``, and a body that
    cannot cross the cap, because there is none or its declared length is within it.
    The server delivers exactly the declared length (HTTP/1.1 framing: uvicorn and
    hypercorn end the body with ``more_body`` False only once it has all arrived, h2
    refuses a stream whose DATA differs from it, WSGI servers give ``wsgi.input`` that
    many bytes) and reports a client that stops short as a disconnect.
    """
    try:
        account = open_account(head, limits, now)
    except BodyRejected as rejection:
        return Answer(head, now, config.reject(head, rejection))
    except BadRequest as error:  # a Content-Length the header rules refuse
        return Answer(head, now, config.reject(head, BodyRejected(error.status, str(error))))
    unwatched = limits.body_timeout is None and limits.body_deadline is None
    if unwatched and (account.declared is not None or limits.max_body_size is None):
        return None
    return StreamingExchange(head, now, config, account)


class StreamingExchange(Exchange):
    """One request in ``"stream"`` mode: count what the app reads, time each read.

    It overrides ``request_body`` only (the head was checked by
    :func:`stream_exchange`), so the drivers add nothing to the response but the
    held head that lets a refused read replace it."""

    __slots__ = ("_account", "_deadline", "config")

    def __init__(
        self, head: RequestHead, now: float, config: _Config, account: BodyAccount
    ) -> None:
        self.head = head  # Exchange.__init__'s two fields, without its call
        self.now = now
        self.config = config
        self._account = account
        self._deadline = account.limits.body_deadline is not None

    # The core reads this per exchange; here it depends on the matching rule.
    @property
    def request_read_timeout(self) -> float | None:  # type: ignore[override]
        return self._account.limits.body_timeout

    def request_body(self, chunk: bytes, more: bool) -> None:
        account = self._account
        try:
            if self._deadline:  # 408 once it has passed
                account.read_timeout(self.config.clock())
            account.add(len(chunk))
            if not more:
                account.finish()
        except BodyRejected as rejection:
            raise Abort(self.config.reject(self.head, rejection)) from None

    bad_request = _bad_request

    def read_timed_out(self) -> Response:
        return self.config.reject(self.head, self._account.timed_out())


class RequestBuffering(Middleware):
    """Cap, time and buffer request bodies before the app sees them (nginx-style).

    ``RequestBuffering(app, **options)`` returns an app of the same interface
    as ``app`` (WSGI or ASGI). Options (all keyword-only):

    * ``max_body_size`` (default ``"10m"``, 10 MiB): the largest body accepted,
      as bytes (int), a size string (``"10MB"``, ``"512k"``, ``"1GiB"``) or
      None for no limit. A larger declared Content-Length is answered 413
      before the body is read; a chunked body is answered 413 the moment it
      crosses the limit. nginx: ``client_max_body_size``.
    * ``body_timeout`` (default ``60.0`` seconds, None for none): the longest
      wait between two reads of the body; a stalled upload gets 408.
      nginx: ``client_body_timeout``.
    * ``body_deadline`` (default None): an overall limit in seconds on reading
      the whole body, against clients that drip bytes just fast enough.
    * ``mode`` (default ``"buffer"``): ``"buffer"`` reads the whole body before
      calling the app (the app then sees a Content-Length); ``"stream"``
      passes it through as the app reads, enforcing only the limit and the
      timeout. nginx: ``proxy_request_buffering on|off``.
    * ``memory_size`` (default ``"1m"``): how much of a buffered body stays in
      memory; the rest goes to an anonymous temporary file.
      nginx: ``client_body_buffer_size``.
    * ``rules`` (default none): :class:`RequestBufferingRule` overrides by path
      prefix (or regex) and method; the first match wins.
    * ``error_format`` (default ``"text"``): ``"text"`` or ``"problem+json"``.
    * ``spool_dir`` (default: the system temporary directory).
    * ``spool_error_status`` (default 503): the status when the disk refuses
      the spool file (503 or 500).
    * ``close_connection`` (default True): under ASGI, send ``Connection:
      close`` with a 400/408/413 whose body was not read to its end, so the
      server stops reading it (a WSGI app may not send that header).
    * ``interface``, ``clock``: see :class:`bridge.middleware.Middleware`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: Any,
        *,
        max_body_size: int | str | None = "10m",
        body_timeout: float | None = 60.0,
        body_deadline: float | None = None,
        mode: Mode = "buffer",
        memory_size: int | str = "1m",
        rules: Iterable[RequestBufferingRule] = (),
        error_format: ErrorFormat = "text",
        spool_dir: str | os.PathLike[str] | None = None,
        spool_error_status: int = 503,
        close_connection: bool = True,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.config = _Config(
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            body_deadline=body_deadline,
            mode=mode,
            memory_size=memory_size,
            rules=rules,
            error_format=error_format,
            spool_dir=spool_dir,
            spool_error_status=spool_error_status,
            clock=clock,
            # PEP 3333 forbids hop-by-hop headers from a WSGI app (waitress and
            # wsgiref refuse them), so only an ASGI server is told to close.
            close_connection=close_connection and self.interface == "asgi",
        )

    def exchange(
        self, head: RequestHead, now: float
    ) -> BufferingExchange | StreamingExchange | Answer | None:
        config = self.config
        limits = config.base if not config.rules else config.limits(head)
        if limits.mode == "stream":
            return stream_exchange(head, now, config, limits)
        return BufferingExchange(head, now, config, limits)
