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

:class:`ResponseState` holds the PEP 3333 response rules: it turns what the app
does (``start_response``, body chunks from ``write()`` or the iterable, the end
of the iterable) into ASGI ``http.response.*`` messages handed to ``emit``. It
does no I/O itself; the caller decides where ``emit`` goes (a list on the fast
path, a bounded queue to the event loop while streaming).

Invariants:

* ``close()`` of the app's iterable is called exactly once on every path
  (end, app error, client disconnect, abort).
* Every failure ends as one log line and a result: ``DONE`` (a complete
  response was emitted, perhaps a 400/500 page) or ``ABORTED`` (the response
  cannot be completed: headers already went out, or the client is gone).
* ``http.response.start`` is emitted once, just before the first non-empty
  body chunk or at the end of an empty response, so ``start_response`` with
  ``exc_info`` can still replace the status until then. After it, a call with
  ``exc_info`` re-raises that exception (PEP 3333).
* Body bytes emitted never exceed a declared Content-Length; extra bytes are
  cut off and :attr:`ResponseState.overflowed` is set. A response that ends
  short of its Content-Length raises :class:`ResponseError` instead of completing.
* Status and headers are validated when ``start_response`` is called, so a
  broken header fails inside the app (which can still answer 500), never in
  the server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import IO, Any, Final

from asgiref.typing import HTTPResponseBodyEvent, HTTPResponseStartEvent

from bridge._http.errors import error_body
from bridge._http.headers import NAME_BYTES, invalid_value, parse_length
from bridge._http.logfields import EventLog
from bridge._http.types import Environ, ExcInfo, WriteCallable, WsgiApp
from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError

__all__ = ("AppRun", "AppRunResult", "FileWrapper", "Message", "ResponseError", "ResponseState")

logger = logging.getLogger("bridge.wsgi_to_asgi")
log = EventLog(logger, "WsgiToAsgi")

# -- the PEP 3333 response rules ------------------------------------------------------

Message = dict[str, Any]
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class ResponseError(Exception):
    """The WSGI application broke PEP 3333; the message names how."""


def _parse_status(status: object) -> int:
    if not isinstance(status, str):
        raise ResponseError(f"start_response() status must be str, not {type(status).__name__}")
    code = status[:3]
    if not (code.isdigit() and code[0] != "0" and (len(status) == 3 or status[3] == " ")):
        raise ResponseError(f"invalid status line {status[:40]!r}; expected e.g. '200 OK'")
    return int(code)


def _encode_headers(headers: object) -> list[tuple[bytes, bytes]]:
    if not isinstance(headers, list):
        raise ResponseError(f"response headers must be a list, not {type(headers).__name__}")
    encoded: list[tuple[bytes, bytes]] = []
    for header in headers:
        if not (isinstance(header, tuple) and len(header) == 2):
            raise ResponseError(f"response header must be a (name, value) tuple: {header!r:.60}")
        name, value = header
        if not (isinstance(name, str) and isinstance(value, str)):
            raise ResponseError(f"response header name and value must be str: {header!r:.60}")
        try:
            lowered = NAME_BYTES[name]
        except ValueError as exc:
            raise ResponseError(f"invalid response {exc}") from None
        if "\r" in value or "\n" in value or "\0" in value:  # FORBIDDEN_IN_VALUE
            raise ResponseError(invalid_value(name, value))
        try:
            encoded.append((lowered, value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ResponseError(f"response header {name!r} is not latin-1 text") from None
    return encoded


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            length = parse_length(value)
            if length is None:
                raise ResponseError(f"invalid response Content-Length {value[:40]!r}")
            return length
    return None


def _body(chunk: bytes, more_body: bool) -> Message:
    message: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": chunk,
        "more_body": more_body,
    }
    return dict(message)


class ResponseState:
    """One request's response, from WSGI calls to ASGI messages (see the module docstring)."""

    def __init__(self, emit: Callable[[Message], None], *, head_request: bool) -> None:
        self.emit = emit
        self.headers_sent = False
        self.overflowed = False
        self.status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_request = head_request
        self._declared: int | None = None
        self._sent = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None
    ) -> None:
        if exc_info is not None and exc_info[0] is not None:
            if self.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise ResponseError("start_response() was called twice without exc_info")
        code = _parse_status(status)
        encoded = _encode_headers(headers)
        length = _declared_length(encoded)
        self.status, self._headers = code, encoded
        checks_length = not self._head_request and code >= 200 and code not in _NO_BODY_STATUSES
        self._declared = length if checks_length else None

    def _send_start(self) -> None:
        if self.status is None:
            raise ResponseError("the application sent a body before calling start_response()")
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": self.status,
            "headers": self._headers,
            "trailers": False,
        }
        self.headers_sent = True
        self.emit(dict(start))

    def body(self, chunk: bytes) -> None:
        """Emit one body chunk (from the iterable or ``write()``)."""
        if not isinstance(chunk, bytes):
            raise ResponseError(f"the application produced {type(chunk).__name__}, not bytes")
        if not chunk:
            return
        if self._declared is not None and self._sent + len(chunk) > self._declared:
            self.overflowed = True
            chunk = chunk[: self._declared - self._sent]
            if not chunk:
                return
        if not self.headers_sent:
            self._send_start()
        self._sent += len(chunk)
        self.emit(_body(chunk, True))

    def finish(self) -> None:
        """The body is complete: emit the end of the response."""
        if self.status is None:
            raise ResponseError("the application returned without calling start_response()")
        if self._declared is not None and self._sent < self._declared:
            raise ResponseError(
                f"the response ended after {self._sent} of its {self._declared} "
                "bytes (Content-Length)"
            )
        if not self.headers_sent:
            self._send_start()
        self.emit(_body(b"", False))

    def can_send_whole_file(self, size: int) -> bool:
        """Whether a file of ``size`` bytes may be sent whole, as the entire body."""
        return self.status is not None and not self.headers_sent and self._declared in (None, size)

    def pathsend(self, path: str) -> None:
        """Emit the whole response as an ASGI ``http.response.pathsend`` of ``path``."""
        self._send_start()
        self.emit({"type": "http.response.pathsend", "path": path})

    def fail(self, status: int, detail: str | None = None) -> None:
        """Replace the response with bridge's error body (only before headers went out)."""
        rendered = error_body(status, detail)
        self.status = status
        self._headers = list(rendered.headers)
        self._declared = None
        self._send_start()
        self.emit(_body(rendered.body, False))


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; sent with pathsend when possible."""

    def __init__(self, filelike: IO[bytes], block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size if block_size > 0 else 64 * 1024

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.block_size):
            yield block

    def path(self) -> str | None:
        """The absolute path of a regular file positioned at its start, else None."""
        name = getattr(self.filelike, "name", None)
        if not isinstance(name, (str, os.PathLike)):
            return None
        try:
            if self.filelike.tell() != 0:
                return None
        except (AttributeError, OSError, ValueError):
            return None
        path = os.path.abspath(os.fspath(name))
        return path if os.path.isfile(path) else None

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# -- the app run ----------------------------------------------------------------------


class AppRunResult(Enum):
    """How a thread call of :class:`AppRun` ended."""

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

    def begin(self) -> AppRunResult:
        """Call the app and iterate its response to the end. Never raises an Exception."""
        try:
            result = self.app(self.environ, self.start_response)
            if result is None:
                raise ResponseError("the application returned None instead of an iterable")
            self._result = result
            if self.pathsend and isinstance(result, FileWrapper) and self._send_path(result):
                return self._end(AppRunResult.DONE)
            self._iterator = iter(result)
            return self._iterate(in_memory=isinstance(result, (list, tuple)))
        except BaseException as exc:
            return self._fail(exc)

    def resume(self) -> AppRunResult:
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

    def _iterate(self, *, in_memory: bool) -> AppRunResult:
        state = self.state
        iterator = self._iterator
        if iterator is None:
            raise RuntimeError("resume() without a response iterator")
        for chunk in iterator:
            state.body(chunk)
            if state.overflowed:
                log.warning("truncated", self.environ, "response longer than its Content-Length")
                break
            if not in_memory and not self.streaming and state.headers_sent:
                self.streaming = True
                if not self.stream_in_place:
                    return AppRunResult.STREAMING
                self.start_streaming()
        state.finish()
        return self._end(AppRunResult.DONE)

    def _end(self, result: AppRunResult) -> AppRunResult:
        self.close()
        return result

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
            log.error(
                "failed", self.environ, "the response iterable's close() raised", exc_info=True
            )

    def _fail(self, exc: BaseException) -> AppRunResult:
        try:
            return self._result_of(exc)
        finally:
            self.close()
            if not isinstance(exc, Exception):
                raise exc

    def _result_of(self, exc: BaseException) -> AppRunResult:
        disconnect = _find_cause(exc, ClientDisconnected)
        if disconnect is not None:
            if not getattr(disconnect, "already_logged", False):
                log.info("abandoned", self.environ, "%s", disconnect)
            return AppRunResult.ABORTED
        if not isinstance(exc, Exception):
            return AppRunResult.ABORTED
        body_error = _find_cause(exc, RequestBodyError)
        if self.state.headers_sent:
            log.error(
                "aborted",
                self.environ,
                "the application failed after the response started: %s",
                exc,
                exc_info=not isinstance(exc, ResponseError),
            )
            return AppRunResult.ABORTED
        if body_error is not None:
            log.warning("refused", self.environ, "bad request: %s", body_error)
        else:
            log.error(
                "failed",
                self.environ,
                "the application failed: %s; sent 500",
                exc,
                exc_info=not isinstance(exc, ResponseError),
            )
        try:
            if body_error is not None:
                self.state.fail(400, str(body_error))
            else:
                self.state.fail(500)
        except ClientDisconnected:
            return AppRunResult.ABORTED
        return AppRunResult.DONE
