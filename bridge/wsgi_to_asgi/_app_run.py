"""The worker-thread side of one WsgiToAsgi request: call the app, iterate, always close.

Theory of operation
-------------------
:class:`AppRun` runs in worker threads. :meth:`AppRun.begin` calls the app
and iterates its response into the :class:`ResponseState`, whose ``emit``
first collects messages in memory. A list or tuple response is complete in
memory anyway, so it is collected whole and the event loop sends it after the
thread returns: one thread hand-off per request. Any other iterable (and any
``write()``) must stream from its first non-empty chunk on, because PEP 3333
forbids holding a chunk back while the app produces the next one. Streaming
happens in place (:attr:`AppRun.start_streaming` moves the response to a
bounded queue the loop drains while this thread goes on) when the driver can
take it; otherwise :meth:`AppRun.begin` returns ``STREAMING`` and
:meth:`AppRun.resume` goes on in a later thread call, and ``write()``
transmits through :attr:`AppRun.flush` before it returns.

Invariants:

* ``close()`` of the app's iterable is called exactly once on every path
  (end, app error, client disconnect, abort).
* Every failure ends as one log line and an outcome: ``DONE`` (a complete
  response was emitted, perhaps a 400/500 page) or ``ABORTED`` (the response
  cannot be completed: headers already went out, or the client is gone).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from enum import Enum

from bridge._http.types import Environ, ExcInfo, WriteCallable, WsgiApp
from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError
from bridge.wsgi_to_asgi._response import FileWrapper, ResponseError, ResponseState

__all__ = ("AppRun", "Outcome")

logger = logging.getLogger("bridge.wsgi_to_asgi")


class Outcome(Enum):
    DONE = "done"
    STREAMING = "streaming"  # paused at the first streamed chunk; resume() goes on
    ABORTED = "aborted"


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _noop() -> None:
    pass


class AppRun:
    """One request's call into the WSGI app (see the module docstring)."""

    def __init__(
        self, app: WsgiApp, environ: Environ, state: ResponseState, *, pathsend: bool
    ) -> None:
        self.app = app
        self.environ = environ
        self.state = state
        self.pathsend = pathsend
        #: Whether the driver can take a streamed response while the thread goes on
        #: (it has a task group to spawn a sender in). If not, :meth:`begin` returns
        #: ``STREAMING`` at the first streamed chunk and :meth:`resume` goes on later,
        #: and ``write()`` transmits through :attr:`flush` before it returns.
        self.stream_in_place = True
        #: Called once, in the thread, when the response starts streaming in place.
        self.start_streaming: Callable[[], None] = _noop
        #: Called after ``write()`` when not streaming in place: transmit now.
        self.flush: Callable[[], None] = _noop
        #: Whether the response is streaming (in place, or after ``STREAMING``).
        self.streaming = False
        self._result: Iterable[bytes] | None = None
        self._iterator: Iterator[bytes] | None = None
        self._closed = False

    # -- the WSGI callables --------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> WriteCallable:
        try:
            self.state.start_response(status, headers, exc_info)
        finally:
            exc_info = None  # PEP 3333: avoid a reference cycle through the traceback
        return self.write

    def write(self, data: bytes) -> None:
        self.state.body(data)
        if not self.state.headers_sent or self.streaming:
            return
        if self.stream_in_place:
            self.streaming = True
            self.start_streaming()
        else:
            self.flush()

    # -- running -----------------------------------------------------------------

    def begin(self) -> Outcome:
        """Call the app and iterate its response to the end. Never raises an Exception."""
        try:
            result = self.app(self.environ, self.start_response)
            if result is None:
                raise ResponseError("the application returned None instead of an iterable")
            self._result = result
            if self.pathsend and isinstance(result, FileWrapper) and self._send_path(result):
                return self._end(Outcome.DONE)
            self._iterator = iter(result)
            return self._iterate(in_memory=isinstance(result, (list, tuple)))
        except BaseException as exc:
            return self._fail(exc)

    def resume(self) -> Outcome:
        """Iterate the rest of a response :meth:`begin` left ``STREAMING``. Never raises."""
        try:
            return self._iterate(in_memory=False)
        except BaseException as exc:
            return self._fail(exc)

    def _send_path(self, wrapper: FileWrapper) -> bool:
        path = wrapper.path()
        if path is None or not self.state.can_send_whole_file(os.path.getsize(path)):
            return False
        self.state.pathsend(path)
        return True

    def _iterate(self, *, in_memory: bool) -> Outcome:
        state = self.state
        iterator = self._iterator
        if iterator is None:
            raise RuntimeError("resume() without a response iterator")
        for chunk in iterator:
            state.body(chunk)
            if state.overflowed:
                logger.warning(
                    "%s %s: response longer than its Content-Length; extra bytes dropped",
                    self.environ["REQUEST_METHOD"],
                    self.environ["PATH_INFO"],
                )
                break
            if not in_memory and not self.streaming and state.headers_sent:
                self.streaming = True
                if not self.stream_in_place:
                    return Outcome.STREAMING
                self.start_streaming()
        state.finish()
        return self._end(Outcome.DONE)

    def _end(self, outcome: Outcome) -> Outcome:
        self.close()
        return outcome

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    @property
    def has_iterable(self) -> bool:
        """Whether the app has returned an iterable (whose ``close()`` runs in a thread)."""
        return self._result is not None

    def close(self) -> None:
        """Call ``close()`` on the app's iterable once; errors are logged."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._result, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            logger.exception("the response iterable's close() raised")

    def _fail(self, exc: BaseException) -> Outcome:
        try:
            return self._outcome_of(exc)
        finally:
            self.close()
            if not isinstance(exc, Exception):
                raise exc

    def _outcome_of(self, exc: BaseException) -> Outcome:
        request = f"{self.environ['REQUEST_METHOD']} {self.environ['PATH_INFO']}"
        disconnect = _find_cause(exc, ClientDisconnected)
        if disconnect is not None:
            if not getattr(disconnect, "already_logged", False):
                logger.info("%s: %s", request, disconnect)
            return Outcome.ABORTED
        if not isinstance(exc, Exception):
            return Outcome.ABORTED
        body_error = _find_cause(exc, RequestBodyError)
        if self.state.headers_sent:
            logger.error(
                "%s: the application failed after the response started; response aborted: %s",
                request,
                exc,
                exc_info=not isinstance(exc, ResponseError),
            )
            return Outcome.ABORTED
        if body_error is not None:
            logger.warning("%s: bad request: %s", request, body_error)
        else:
            logger.error(
                "%s: the application failed: %s",
                request,
                exc,
                exc_info=not isinstance(exc, ResponseError),
            )
        try:
            if body_error is not None:
                self.state.fail(400, str(body_error))
            else:
                self.state.fail(500)
        except ClientDisconnected:
            return Outcome.ABORTED
        return Outcome.DONE
