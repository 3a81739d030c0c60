"""PEP 3333 response side of WsgiToAsgi: ``start_response`` / body chunks -> ASGI messages.

Theory of operation
-------------------
:class:`ResponseState` turns what a WSGI app does (``start_response``, body
chunks from ``write()`` or the iterable, the end of the iterable) into ASGI
``http.response.*`` messages handed to ``emit``. It does no I/O itself; the
caller decides where ``emit`` goes (a list on the fast path, a bounded queue to
the event loop while streaming).

Invariants:

* ``http.response.start`` is emitted once, just before the first non-empty
  body chunk or at the end of an empty response, so ``start_response`` with
  ``exc_info`` can still replace the status until then. After it, a call with
  ``exc_info`` re-raises that exception (PEP 3333).
* Body bytes emitted never exceed a declared Content-Length; extra bytes are
  cut off and :attr:`overflowed` is set. A response that ends short of its
  Content-Length raises :class:`ResponseError` instead of completing.
* Status and headers are validated when ``start_response`` is called, so a
  broken header fails inside the app (which can still answer 500), never in
  the server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

from asgiref.typing import HTTPResponseBodyEvent, HTTPResponseStartEvent

from bridge._http.errors import error_body
from bridge._http.headers import NAME_BYTES, invalid_value, parse_length
from bridge._http.types import ExcInfo

__all__ = ("FileWrapper", "Message", "ResponseError", "ResponseState")

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
