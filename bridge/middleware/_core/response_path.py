"""The response path both drivers share: what becomes of a request the app answers.

Theory of operation
-------------------
A driver running an exchange that has a hook beyond ``request()`` makes one
:class:`ResponsePath` per request (its per-request run object is a subclass, so
the request costs one object, not two) and reports what happens, in order; the
path runs the exchange's hooks, keeps the request's state and answers with what
to send. The driver only converts between its interface and heads, and sends.

1. ``request_failed(exc)`` / ``responded(response)``: the app is not called;
   the driver sends the response. Or ``forward(head, body)``: the head the app
   gets (announcing a replacement body, which the path then owns).
2. ``request_chunk(chunk, more)`` for each chunk the app reads; False means
   the read must fail (``abort`` holds the response to send instead).
3. ``started(head)`` when the app starts its response.
4. ``response_body(chunk, more)`` for each body chunk while ``body_hook`` (the
   exchange overrides ``response_body`` and ``response_start`` did not return
   False): the chunks to send now. Otherwise the body passes as it is.
5. ``send_head(status)`` when the first non-empty chunk (or the end of
   the body) is about to leave: None (send the app's head), a
   :class:`ResponseHead` (send it instead) or a :class:`Response` (send it
   instead of the app's whole response, whose output is then dropped). The
   path asks the driver's ``held_head()`` for the app's head only when the
   exchange has a ``response`` hook.
6. ``app_failed(exc)`` / ``app_returned_early(what)``: the response to send
   when the app raised or returned before its head could leave.
7. ``outcome`` of the request, then ``finish(outcome)``, exactly once.

Invariants:

* The head is held until the first non-empty chunk, so an app that fails
  before its body gets the same 500 under WSGI and ASGI, logged once.
* A refusal (:class:`Abort` from ``request_body``, a :class:`BadRequest` from
  any hook, a bug in ``response``) replaces the app's response while its head
  is unsent; once it has left, a hook's BadRequest ends the response instead.
* At most one head leaves, and the outcome of a replaced response is the one
  recorded when it was replaced. ``finish`` runs at most once; the replayed
  body is closed then.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from bridge._http.translate import BadRequest
from bridge.middleware._core.drive import INTERNAL_ERROR, bad_request, failure, log
from bridge.middleware._core.exchange import (
    Abort,
    Exchange,
    Features,
    FinishResult,
    Outcome,
    OutcomeKind,
    ReplayBody,
    completed,
)
from bridge.middleware._core.heads import RequestHead, Response, ResponseHead, head_for_body

if TYPE_CHECKING:
    from bridge.middleware._core.base import Middleware

__all__ = ("ResponsePath",)


#: The lines of the driver's own 500 a ``response`` hook cannot change: they describe its body.
_FRAMING: Final = frozenset(
    {b"content-length", b"content-type", b"transfer-encoding", b"content-encoding"}
)


class ResponsePath:
    """One request's response-side state and decisions (see the module docstring)."""

    __slots__ = (
        "abort",
        "app_head",
        "body_hook",
        "ended",
        "ex",
        "features",
        "finished",
        "mw",
        "replaced",
        "replay",
        "status",
    )

    def __init__(self, mw: Middleware, ex: Exchange, features: Features) -> None:
        self.mw = mw
        self.ex = ex
        self.features = features
        self.status: int | None = None  # the status sent, once a head has left
        self.abort: Response | None = None  # sent instead of the app's response, while possible
        self.replaced: Outcome | None = None  # our response went out instead of the app's
        self.replay: ReplayBody | None = None
        self.app_head: ResponseHead | None = None  # the app's head as the hooks saw it
        # response_body is called for this response: the exchange overrides it, and its
        # response_start did not return False (the body passes unchanged).
        self.body_hook = features.response_body
        self.ended = False  # the body's last chunk left
        self.finished = False

    @property
    def who(self) -> str:
        """The middleware's name, for log lines."""
        return type(self.mw).__name__

    # -- the request ------------------------------------------------------------

    def request_failed(self, exc: Exception) -> Response:
        """``request()`` raised: the response to send instead of calling the app."""
        response, kind = failure(self.who, exc, "in request()", self.ex)
        self._replace(response, kind, exc)
        return response

    def responded(self, response: Response) -> Response:
        """``request()`` answered: ``response`` goes out and the app is not called."""
        self._replace(response, "responded", None)
        return response

    def forward(self, head: RequestHead, body: ReplayBody | None) -> RequestHead:
        """The head the app gets; a replacement ``body`` is closed by :meth:`finish`."""
        if body is None:
            return head
        self.replay = body
        return head_for_body(head, body.length)

    def request_chunk(self, chunk: bytes, more: bool) -> bool:
        """Show a chunk the app read to ``request_body``; False when the read must fail."""
        try:
            self.ex.request_body(chunk, more)
        except Abort as abort:
            self.abort = abort.response
            return False
        except BadRequest as exc:
            self.abort = bad_request(self.who, exc, self.ex)
            return False
        return True

    def read_timed_out(self) -> None:
        """A read of the app's exceeded ``request_read_timeout``: the read fails."""
        self.abort = self.ex.read_timed_out()

    # -- the app's response -------------------------------------------------------

    def started(self, head: ResponseHead | None) -> None:
        """The app started (or restarted, WSGI ``exc_info``) its response; ``head`` is
        given when the exchange has a ``response_start`` hook."""
        self.app_head = head
        if head is not None:
            try:
                passes = self.ex.response_start(head) is False
            except BadRequest as exc:
                self.refuse(exc)
            else:
                self.body_hook = self.features.response_body and not passes

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        """The chunks ``response_body`` gives for ``chunk``; none once the request is refused
        (the hook is not called again: the app's response will not be sent)."""
        if self.refused:
            return ()
        try:
            return self.ex.response_body(chunk, more)
        except BadRequest as exc:
            self.refuse(exc)
            return ()

    def refuse(self, exc: BadRequest) -> None:
        """A hook found the request head malformed: answer it instead of the app, or,
        once the app's head has left, end the response with ``exc``."""
        if self.status is not None:
            raise exc
        self.abort = bad_request(self.who, exc, self.ex)

    @property
    def refused(self) -> bool:
        """True when the head to send will be :attr:`abort`'s response, not the app's."""
        return self.abort is not None and self.status is None

    def held_head(self) -> ResponseHead:
        """The app's held head as a :class:`ResponseHead` (each driver converts its own)."""
        raise NotImplementedError

    def send_head(self, status: int) -> ResponseHead | Response | None:
        """What to send as the head now: None for the app's own head (``status``), a
        rewritten head, or a response to send instead of the app's whole response.

        The app's head is converted (:meth:`held_head`) only for a ``response`` hook."""
        if self.abort is None and self.features.response:
            head = self.app_head or self.held_head()
            self.app_head = head
            try:
                new = self.ex.response(head)
            except BadRequest as exc:
                self.abort = bad_request(self.who, exc, self.ex)
            except Exception as exc:
                self.abort = failure(self.who, exc, "on the response head", self.ex)[0]
                return self._replace(self.abort, "middleware_error", exc)
            else:
                self.status = new.status
                return None if new is head else new
        if self.abort is not None:
            return self._replace(self.abort, "aborted", None)
        self.status = status
        return None

    def app_failed(self, exc: Exception) -> Response | None:
        """The app raised before its own head left: the response to send instead (the
        refusal, or a 500 logged once); None when our response already went out."""
        if self.replaced is not None:
            return None
        if self.abort is not None:
            return self._replace(self.abort, "aborted", None)
        log.error(
            "failed",
            self.ex.head,
            "the app raised before its response started; sent 500",
            exc_info=exc,
            middleware=self.who,
        )
        return self._replace(self._failure_response(), "app_error", exc)

    def app_returned_early(self, what: str) -> Response:
        """The app returned without ``what`` ("a response", "its response body"): the
        refusal, or a 500 logged once."""
        if self.abort is not None:
            return self._replace(self.abort, "aborted", None)
        log.error(
            "failed",
            self.ex.head,
            "the app returned without %s; sent 500",
            what,
            middleware=self.who,
        )
        return self._replace(self._failure_response(), "app_error", None)

    def _failure_response(self) -> Response:
        """The 500 for an app that failed, through the exchange's ``response`` hook when
        it asks for that (``response_on_failure``): the hook's lines with our status and
        framing (the body is ours), or the plain 500 when the hook raises or changes the
        status."""
        plain = INTERNAL_ERROR
        if not (self.features.response and self.ex.response_on_failure):
            return plain
        try:
            head = self.ex.response(plain.head)
        except Exception as exc:
            log.error(
                "failed",
                self.ex.head,
                "raised in response() on the 500",
                exc_info=exc,
                middleware=self.who,
            )
            return plain
        if head.status != plain.status:
            return plain
        ours = [line for line in plain.headers if line[0].lower() in _FRAMING]
        theirs = [line for line in head.headers if line[0].lower() not in _FRAMING]
        return Response(plain.status, (*ours, *theirs), plain.body)

    @property
    def dropped(self) -> bool:
        """True once our response went out instead of the app's: drop the app's output."""
        return self.replaced is not None

    @property
    def app_head_sent(self) -> bool:
        """True once the app's own head (maybe rewritten) has left."""
        return self.status is not None and self.replaced is None

    def _replace(self, response: Response, kind: OutcomeKind, error: Exception | None) -> Response:
        self.status = response.status
        self.replaced = Outcome(kind, response.status, error)
        return response

    # -- how it ended ---------------------------------------------------------------

    def outcome(self, error: BaseException | None = None) -> Outcome:
        """How the request ended: the recorded outcome of a replaced response; else
        completed once the body's end left, or how the app's error (or a client that
        went away, an ``OSError``) cut it short."""
        if self.replaced is not None:
            return self.replaced
        if error is not None:
            kind: OutcomeKind = "disconnected" if isinstance(error, OSError) else "app_error"
            return Outcome(kind, self.status, error)
        if self.ended:
            return completed(self.status)
        return Outcome("app_error", self.status)  # the app returned before its body's end

    def cut_short(self) -> Outcome:
        """The server stopped reading the body before its end (WSGI ``close()``)."""
        return self.replaced or Outcome("disconnected", self.status)

    def finish(self, outcome: Outcome) -> FinishResult:
        """Called by the driver on every path; only the first call does anything: closes
        the replayed body and returns the ``finish`` hook's effects to run (or None)."""
        if self.finished:
            return None
        self.finished = True
        if self.replay is not None:
            self.replay.close()
        if not self.features.finish:
            return None
        try:
            return self.ex.finish(outcome)
        except Exception as exc:
            log.error(
                "failed", self.ex.head, "raised in finish()", exc_info=exc, middleware=self.who
            )
            return None
