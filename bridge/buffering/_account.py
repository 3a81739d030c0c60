"""Accounting for one request body: sans-IO, the caller reads and passes the clock.

Theory of operation
-------------------
:meth:`BodyAccount.open` looks at the request head only. A Content-Length
that is repeated, negative or not a number is a 400; a Content-Length that is
present together with Transfer-Encoding is a 400 too (the two framings
disagree, the classic request-smuggling shape); a declared length over
``max_body_size`` is a 413 *before a single body byte is read* (so a client
that sent ``Expect: 100-continue`` never gets its 100).

Then, for every chunk the caller reads, :meth:`BodyAccount.add` counts it; the
first chunk that takes the total over ``max_body_size`` is a 413 at once, so
an unbounded chunked body is never read past the cap and never reaches the app
as if it were complete. Before each read the caller asks :meth:`read_timeout`
how long it may wait: ``body_timeout`` between two reads (nginx's
``client_body_timeout``), shortened by the optional overall ``body_deadline``.
A read that times out is a 408 (:meth:`timed_out`); a body that ends short of
its declared length means the client went away (:meth:`finish`).

Every rejection is a :class:`BodyRejected` carrying the status, a short title,
one line of detail for the log, and whether the connection should be closed
(always, once the body is not read to its end: the rest of it would otherwise
be taken for the next request).
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge._http.errors import error_title
from bridge._http.headers import parse_length
from bridge._http.translate import BadRequest, parse_content_length
from bridge.buffering._rules import BodyLimits

__all__ = ("BodyAccount", "BodyRejected")


class BodyRejected(Exception):
    """A request body that must be answered with :attr:`status` instead of the app."""

    def __init__(self, status: int, detail: str, *, close: bool = True) -> None:
        super().__init__(detail)
        self.status = status
        self.title = error_title(status)
        self.detail = detail
        self.close = close


class BodyAccount:
    """Counts one request body against one :class:`BodyLimits`."""

    __slots__ = (
        "_cut_by_deadline",
        "_deadline",
        "declared",
        "expects_body",
        "limits",
        "received",
        "unframed",
    )

    def __init__(
        self,
        limits: BodyLimits,
        declared: int | None,
        now: float,
        expects_body: bool = True,
        unframed: bool = False,
    ) -> None:
        self.limits = limits
        self.declared = declared
        #: False only for Content-Length: 0, the one head that rules a body out for sure.
        self.expects_body = expects_body
        #: An HTTP/1.x head with neither Content-Length nor Transfer-Encoding. RFC 9112
        #: (6.3) says no body follows, but a server may still deliver one (a WSGI server
        #: setting ``wsgi.input_terminated``, a server that de-chunked the body and
        #: dropped the header): it is read and capped like any body, and when it turns
        #: out empty the request goes on untouched.
        self.unframed = unframed
        self.received = 0
        deadline = limits.body_deadline
        self._deadline = None if deadline is None else now + deadline
        #: True when the last wait allowed by :meth:`read_timeout` ended at the deadline.
        self._cut_by_deadline = False

    @classmethod
    def open(
        cls,
        headers: Iterable[tuple[bytes, bytes]],
        limits: BodyLimits,
        now: float,
        *,
        self_framed: bool = False,
    ) -> BodyAccount:
        """Check the head; raise :class:`BodyRejected` (400, 413) or return an account.

        ``self_framed``: the protocol delimits bodies itself (HTTP/2 and 3), so a
        body may come without Content-Length or Transfer-Encoding.
        """
        lengths: list[bytes] = []
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                chunked = True
        if len(lengths) > 1:
            _declared(lengths)  # raises: a repeated Content-Length
        length = lengths[0] if lengths else None
        return cls.framed(length, chunked, limits, now, self_framed)

    @classmethod
    def framed(
        cls,
        length: bytes | None,
        chunked: bool,
        limits: BodyLimits,
        now: float,
        self_framed: bool = False,
    ) -> BodyAccount:
        """:meth:`open` for a head already read (one line per name): its Content-Length
        value or None, and whether it has a Transfer-Encoding."""
        declared = None
        if length is not None:
            declared = parse_length(length)
            if declared is None:
                declared = _declared((length,))  # raises: the rules refuse it (400)
        if declared is not None and chunked:
            raise BodyRejected(400, "both Content-Length and Transfer-Encoding were sent")
        cap = limits.max_body_size
        if declared is not None and cap is not None and declared > cap:
            raise BodyRejected(413, f"declared Content-Length {declared} is over the limit {cap}")
        unframed = declared is None and not chunked and not self_framed
        return cls(limits, declared, now, declared != 0, unframed)

    def read_timeout(self, now: float) -> float | None:
        """Seconds the next read may wait (None: forever); 408 once the deadline passed."""
        timeout = self.limits.body_timeout
        if self._deadline is None:
            return timeout
        left = self._deadline - now
        if left <= 0:
            raise self._past_deadline()
        self._cut_by_deadline = timeout is None or left <= timeout
        return left if self._cut_by_deadline else timeout

    def check_deadline(self, now: float) -> None:
        """408 when the deadline has passed, e.g. for a body whose last read ended after it."""
        if self._deadline is not None and now >= self._deadline:
            raise self._past_deadline()

    def _past_deadline(self) -> BodyRejected:
        return BodyRejected(
            408,
            f"request body not complete within body_deadline "
            f"{self.limits.body_deadline:g} s ({self.received} bytes received)",
        )

    def add(self, size: int) -> None:
        """Count ``size`` more bytes; 413 the moment the total crosses the cap."""
        self.received += size
        cap = self.limits.max_body_size
        if cap is not None and self.received > cap:
            raise _crossed(cap)

    def timed_out(self) -> BodyRejected:
        """A read waited longer than it was allowed to: past the deadline when that is
        what ended the wait, else a stall (``body_timeout``)."""
        if self._cut_by_deadline:
            return self._past_deadline()
        return BodyRejected(408, f"request body stalled after {self.received} bytes")

    def disconnected(self) -> BodyRejected:
        return BodyRejected(400, f"client disconnected mid-body after {self.received} bytes")

    def finish(self) -> None:
        """The body ended; a short body means the client went away before sending it all."""
        if self.declared is not None and self.received < self.declared:
            raise self._short()

    def _short(self) -> BodyRejected:
        return BodyRejected(
            400, f"request body ended after {self.received} of {self.declared} declared bytes"
        )


def _declared(lengths: Iterable[bytes]) -> int | None:
    """The declared length; :class:`BodyRejected` (400) for one the rules refuse."""
    try:
        return parse_content_length(lengths)
    except BadRequest as exc:
        raise BodyRejected(400, str(exc)) from None


def _crossed(cap: int) -> BodyRejected:
    return BodyRejected(413, f"request body crossed the limit {cap} while being read")
