"""Decisions, effects, outcomes and the per-request :class:`Exchange`.

Theory of operation
-------------------
A middleware is configured once; for each request it creates an
:class:`Exchange` holding the immutable request head and the clock value
``now``. A driver (WSGI or ASGI) then asks the exchange, in this order:

1. ``request()`` -> a decision: :class:`Forward` (maybe with a rewritten head
   and a replacement body) or :class:`Respond`. When deciding needs I/O,
   ``request()`` is a generator that *yields* :class:`Effect` objects and
   *returns* the decision; the WSGI driver runs ``effect.run_sync(io)``, the
   ASGI driver awaits ``effect.run_async(io)`` and sends the result (or throws
   the exception) back in. A plain return value needs no generator at all.
2. ``request_body(chunk, more)`` for each chunk the app reads (only when the
   exchange overrides it); raising :class:`Abort` fails the app's read.
3. ``response_start(head)`` once, when the app starts its response (WSGI
   ``start_response``, ASGI ``http.response.start``), before any body chunk:
   the place to decide how to treat the body (e.g. hold it or not; False
   says the body passes unchanged, and ``response_body`` is then not called).
4. ``response_body(chunk, more)`` for each body chunk (only when overridden);
   it returns the chunks to send now, so it may hold back or transform. The
   chunks returned by the final call (``b"", False``) are sent after the app
   is released: under WSGI its iterable is closed first; under ASGI the
   app's last ``send`` returns at once, and more than ``INLINE_FLUSH`` bytes
   are sent by a task next to the app.
5. ``response(head)`` exactly once, just before the head is sent: the driver
   holds the head until the first non-empty chunk leaves (or the response
   ends), so an app that fails before its body gives the same 500 in both.
6. ``finish(outcome)`` exactly once on every path (completed, responded,
   app error, disconnect, cancellation); it may also yield effects.

Nothing here does I/O, touches a thread or reads the clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeAlias, TypeVar

from bridge._http.translate import BadRequest
from bridge._http.wsgi_input import ClientDisconnected
from bridge.middleware._core.heads import RequestHead, Response, ResponseHead

__all__ = (
    "Abort",
    "Answer",
    "BodyTimeout",
    "Call",
    "ClientDisconnected",
    "Decision",
    "Effect",
    "Exchange",
    "Forward",
    "Outcome",
    "ReadBody",
    "ReplayBody",
    "RequestBodyIO",
    "Respond",
    "completed",
)

T = TypeVar("T")


# -- errors the drivers raise into exchanges and apps -------------------------


class BodyTimeout(TimeoutError):
    """No request body arrived within the allowed time."""


class Abort(Exception):
    """Raised by an exchange to stop the request with ``response``.

    From ``request_body``: the app's read fails (WSGI: an ``OSError`` from
    ``wsgi.input``; ASGI: ``http.disconnect``) and, if the response has not
    started, ``response`` is sent instead of the app's.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(f"aborted with {response.status}")
        self.response = response


class RequestBodyAborted(OSError):
    """What a WSGI app's ``wsgi.input`` read raises after an :class:`Abort`."""


# -- replayable request bodies -----------------------------------------------


class ReplayBody:
    """A request body the app will read instead of the client's.

    Either bytes in memory or a binary file (e.g. a ``SpooledTemporaryFile``)
    holding ``length`` bytes from offset 0. The drivers own it once it is in a
    :class:`Forward` and close it when the exchange finishes.
    """

    __slots__ = ("_data", "_file", "length")

    def __init__(self, data: bytes | IO[bytes], length: int | None = None) -> None:
        if isinstance(data, bytes):
            self._data: bytes | None = data
            self._file: IO[bytes] | None = None
            self.length = len(data)
        else:
            if length is None:
                raise TypeError("ReplayBody(file, length): give the number of bytes in the file")
            self._data = None
            self._file = data
            self.length = length

    def open(self) -> IO[bytes]:
        """A binary reader positioned at the start of the body."""
        if self._file is None:
            import io

            return io.BytesIO(self._data or b"")
        self._file.seek(0)
        return self._file

    def chunks(self, size: int = 65536) -> Iterable[bytes]:
        """The body in chunks of at most ``size`` bytes."""
        data = self._data
        if data is not None and len(data) <= size:  # the usual small body: no generator
            return (data,) if data else ()
        return self._chunks(size)

    def _chunks(self, size: int) -> Iterator[bytes]:
        if self._data is not None:
            for start in range(0, len(self._data), size):
                yield self._data[start : start + size]
            return
        reader = self.open()
        while chunk := reader.read(size):
            yield chunk

    @property
    def needs_close(self) -> bool:
        """True when the body is a file that :meth:`close` releases (bytes need nothing)."""
        return self._file is not None

    def close(self) -> None:
        """Release the file, if any. Safe to call twice."""
        if self._file is not None:
            self._file.close()


# -- decisions ----------------------------------------------------------------


class Forward(NamedTuple):
    """Call the app with ``head`` (maybe rewritten) and, if given, ``body``.

    Decisions and outcomes are named tuples: one or two are made per request,
    and a tuple is the cheapest immutable record to make.
    """

    head: RequestHead
    body: ReplayBody | None = None


class Respond(NamedTuple):
    """Do not call the app; send ``response``."""

    response: Response


Decision: TypeAlias = Forward | Respond


# -- effects ------------------------------------------------------------------


class RequestBodyIO(Protocol):
    """What effects can do with the request body; each driver supplies one."""

    def read_sync(self, seconds: float | None) -> bytes: ...

    async def read_async(self, seconds: float | None) -> bytes: ...


class Effect(Generic[T]):
    """I/O an exchange asks a driver to perform while it decides or finishes.

    Subclasses implement both methods; the WSGI driver calls ``run_sync`` and
    the ASGI driver awaits ``run_async``. ``body`` gives access to the request
    body for effects that read it.
    """

    def run_sync(self, body: RequestBodyIO) -> T:
        raise NotImplementedError

    async def run_async(self, body: RequestBodyIO) -> T:
        raise NotImplementedError


class ReadBody(Effect[bytes]):
    """Read the next request body chunk: bytes, ``b""`` at the end.

    Raises :class:`BodyTimeout` when nothing arrives within ``timeout``
    seconds (None: wait as long as the server lets it) and
    :class:`ClientDisconnected` when the client goes away.
    """

    __slots__ = ("timeout",)

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout

    def run_sync(self, body: RequestBodyIO) -> bytes:
        return body.read_sync(self.timeout)

    async def run_async(self, body: RequestBodyIO) -> bytes:
        return await body.read_async(self.timeout)


class Call(Effect[T]):
    """Call ``sync()`` under WSGI or await ``async_()`` under ASGI.

    For I/O with a blocking and an async client, e.g. a Redis command.
    """

    __slots__ = ("_async", "_sync")

    def __init__(self, sync: Callable[[], T], async_: Callable[[], Awaitable[T]]) -> None:
        self._sync = sync
        self._async = async_

    def run_sync(self, body: RequestBodyIO) -> T:
        return self._sync()

    async def run_async(self, body: RequestBodyIO) -> T:
        return await self._async()


# -- outcome ------------------------------------------------------------------

OutcomeKind = Literal[
    "completed",
    "responded",
    "aborted",
    "app_error",
    "middleware_error",
    "disconnected",
    "cancelled",
]


class Outcome(NamedTuple):
    """How an exchange ended, passed to :meth:`Exchange.finish`.

    ``status`` is the status sent to the client (None if nothing was sent);
    ``error`` the exception behind ``app_error`` / ``middleware_error``.
    """

    kind: OutcomeKind
    status: int | None = None
    error: BaseException | None = None


_COMPLETED: dict[int | None, Outcome] = {}


def completed(status: int | None) -> Outcome:
    """``Outcome("completed", status)``, made once per status (outcomes are immutable)."""
    found = _COMPLETED.get(status)
    if found is None:
        found = Outcome("completed", status)
        if len(_COMPLETED) < 1024:  # statuses are few; bounded all the same
            _COMPLETED[status] = found
    return found


# -- the per-request exchange -------------------------------------------------

RequestResult: TypeAlias = Decision | Generator[Effect[Any], Any, Decision]
FinishResult: TypeAlias = Generator[Effect[Any], Any, None] | None


class Exchange:
    """One request's worth of middleware state; subclass and override hooks.

    Only the hooks a subclass overrides cost anything: the drivers check
    once per class which of ``request_body``, ``response_start``,
    ``response_body``, ``response`` and ``finish`` are overridden.
    """

    __slots__ = ("head", "now")

    #: Seconds the app may wait for each request body chunk while
    #: ``request_body`` is overridden (None: no limit). Exceeding it aborts
    #: with :meth:`read_timed_out`'s response.
    request_read_timeout: ClassVar[float | None] = None
    #: True: the 500 the driver sends when the app fails (it raised, or returned
    #: without a response, before its head left) also goes through ``response``,
    #: so the lines it adds reach the client on that error too (CORS's, without
    #: which a browser hides the 500 from the page, the request id, security
    #: headers). Its status and framing stay the driver's; a hook that raises
    #: there leaves the plain 500. For hooks that only add or edit header lines.
    response_on_failure: ClassVar[bool] = False

    def __init__(self, head: RequestHead, now: float) -> None:
        self.head = head
        self.now = now

    def request(self) -> RequestResult:
        """Decide: forward (maybe rewritten) or respond. Default: forward as is."""
        return Forward(self.head)

    def request_body(self, chunk: bytes, more: bool) -> None:
        """See each request body chunk the app reads; raise :class:`Abort` to stop."""

    def read_timed_out(self) -> Response:
        """The response for a read that exceeded :attr:`request_read_timeout`."""
        return Response.error(408)

    def bad_request(self, error: BadRequest) -> Response:
        """The response for a malformed request head found while this exchange ran.

        The drivers build request headers lazily, so a head that cannot be
        translated (e.g. a duplicated Content-Length under ASGI) raises
        :class:`~bridge._http.translate.BadRequest` from the first ``head.headers``
        read, in whichever hook does it. The drivers then answer with this
        response instead of the app's (while the response has not started).
        Default: ``Response.error(error.status, str(error))`` (400 or 431), and the
        driver logs one warning on ``bridge.middleware``; an override renders
        it its own way and logs its own single line.
        """
        return Response.error(error.status, str(error))

    def response_start(self, head: ResponseHead) -> bool | None:
        """See the app's response head as soon as the app starts its response.

        Called before any body chunk reaches :meth:`response_body`, while the
        head is still held; the head that is sent is :meth:`response`'s.
        Return False when this response's body passes unchanged: the drivers
        then never call :meth:`response_body` for it (not even the final
        ``(b"", False)``), which saves its cost per chunk.
        """
        return None

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        """Transform or hold back response body chunks; return what to send now.

        The drivers call it with each body chunk and ``more=True``, then once
        with ``(b"", False)``; what that final call returns is sent after the
        app has been released (see the module docstring).
        """
        return (chunk,)

    def response(self, head: ResponseHead) -> ResponseHead:
        """See, and maybe rewrite, the response head just before it is sent."""
        return head

    def finish(self, outcome: Outcome) -> FinishResult:
        """Called exactly once when the exchange ends, whatever happened."""
        return None


class Answer(Exchange):
    """An exchange that answers with ``response`` and never calls the app (a refusal
    decided from the head, a CORS preflight): what ``exchange()`` returns for a request
    it can answer at once."""

    __slots__ = ("answer",)

    def __init__(self, head: RequestHead, now: float, response: Response) -> None:
        self.head = head
        self.now = now
        self.answer = response

    def request(self) -> Respond:
        return Respond(self.answer)


@dataclass(frozen=True, slots=True)
class Features:
    """Which hooks an exchange class overrides (computed once per class).

    ``request_only``: none of the body, response or finish hooks is
    overridden, so after forwarding the drivers hand the app the server's own
    ``send`` / ``start_response`` and add nothing to the response path.
    """

    request: bool
    request_only: bool
    request_body: bool
    response_start: bool
    response_body: bool
    response: bool
    finish: bool


_features: dict[type[Exchange], Features] = {}


def features_of(kind: type[Exchange]) -> Features:
    """The :class:`Features` of exchange class ``kind`` (cached)."""
    found = _features.get(kind)
    if found is None:
        hooks = {
            name: getattr(kind, name) is not getattr(Exchange, name)
            for name in (
                "request",
                "request_body",
                "response_start",
                "response_body",
                "response",
                "finish",
            )
        }
        found = Features(
            request_only=not any(v for k, v in hooks.items() if k != "request"), **hooks
        )
        _features[kind] = found
    return found


def as_decision(result: Any) -> Decision | None:
    """``result`` if it is a decision, else None (it is then a generator)."""
    kind = type(result)
    if kind is Forward or kind is Respond:
        return result  # type: ignore[no-any-return]
    return None


def bad_decision(result: Any) -> TypeError:
    return TypeError(
        f"Exchange.request() must return Forward, Respond or a generator of effects, "
        f"not {type(result).__name__}"
    )
