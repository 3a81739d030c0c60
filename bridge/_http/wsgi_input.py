"""``wsgi.input`` for WsgiToAsgi: the request body, streamed as the app reads it.

Theory of operation
-------------------
The stream holds the received chunks not read yet (plus a read position in the
first). When the app asks for more than they hold, it pulls from ``more()``,
which blocks the worker thread until the event loop has received something and
returns one chunk or every chunk queued by then (a batch: one hand-off for
several messages); ``more()`` returns None at the end of the body. Nothing is
read ahead here, so memory is bounded by one batch (the queue's bound) plus what
the app asked for.

Invariants:

* A body never ends silently early: a client that disconnects mid-body makes
  every read raise :class:`ClientDisconnected` (an ``OSError``), and a body
  that disagrees with its Content-Length raises :class:`RequestBodyError`.
* Reads never copy more than they return (a read of a whole chunk returns the
  chunk itself).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator

__all__ = ("ClientDisconnected", "RequestBodyError", "WsgiInput")


class ClientDisconnected(OSError):
    """The client went away before the exchange was complete.

    Raised by ``wsgi.input`` reads when the client disconnects mid-upload
    (WsgiToAsgi, the middleware drivers), and by an ASGI app's ``send()`` once
    the WSGI server has closed the response (AsgiToWsgi, ASGI HTTP 2.4).
    """

    #: Set when the adapter has already logged this disconnect.
    already_logged = False


class RequestBodyError(ValueError):
    """The request body disagrees with its Content-Length header."""


class WsgiInput:
    """The request body as a PEP 3333 input stream: read, readline, readlines, iteration."""

    def __init__(
        self,
        first: bytes,
        more: Callable[[], bytes | list[bytes] | None] | None,
        declared_length: int | None,
    ) -> None:
        self._chunk = first
        self._pos = 0
        self._batch: deque[bytes] = deque()  # received after _chunk, not read yet
        self._more = more
        self._declared = declared_length
        self._received = 0
        self._account(first)
        if more is None:
            self._check_complete()

    # -- receiving ---------------------------------------------------------------

    def _account(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._declared is not None and self._received > self._declared:
            raise RequestBodyError(
                f"request body is longer than its Content-Length of {self._declared} bytes"
            )

    def _check_complete(self) -> None:
        if self._declared is not None and self._received < self._declared:
            raise RequestBodyError(
                f"request body ended after {self._received} of its "
                f"{self._declared} bytes (Content-Length)"
            )

    def _pull(self) -> bool:
        """Replace the exhausted chunk with the next one; False at the end of the body."""
        batch = self._batch
        while batch or self._more is not None:
            if batch:
                chunk = batch.popleft()
            else:
                received = self._more()  # type: ignore[misc]  # not None: checked above
                if received is None:
                    self._more = None
                    self._check_complete()
                    break
                if isinstance(received, list):
                    for piece in received:
                        self._account(piece)
                    batch.extend(received)
                    continue
                chunk = received
                self._account(chunk)
            if chunk:
                self._chunk = chunk
                self._pos = 0
                return True
        return False

    @property
    def complete(self) -> bool:
        """True when the whole body is held here: a read never waits for the client."""
        return self._more is None

    def _available(self) -> bool:
        return self._pos < len(self._chunk) or self._pull()

    # -- PEP 3333 ----------------------------------------------------------------

    def read(self, size: int | None = -1, /) -> bytes:
        remaining = sys.maxsize if size is None or size < 0 else size
        parts: list[bytes] = []
        while remaining > 0 and self._available():
            start = self._pos
            piece = self._chunk[start : start + remaining]
            self._pos = start + len(piece)
            remaining -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def read1(self, size: int | None = -1, /) -> bytes:
        """At most ``size`` bytes of one received chunk, waiting only when none is held
        (``io.BufferedReader.read1``): a wait for one piece of the body, never for many."""
        remaining = sys.maxsize if size is None or size < 0 else size
        if remaining == 0 or not self._available():
            return b""
        start = self._pos
        piece = self._chunk[start : start + remaining]
        self._pos = start + len(piece)
        return piece

    def readline(self, size: int | None = -1, /) -> bytes:
        remaining = sys.maxsize if size is None or size < 0 else size
        parts: list[bytes] = []
        while remaining > 0 and self._available():
            start = self._pos
            newline = self._chunk.find(b"\n", start, start + remaining)
            stop = newline + 1 if newline >= 0 else min(len(self._chunk), start + remaining)
            parts.append(self._chunk[start:stop])
            self._pos = stop
            remaining -= stop - start
            if newline >= 0:
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        limit = sys.maxsize if hint is None or hint <= 0 else hint
        lines: list[bytes] = []
        total = 0
        while total < limit:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def close(self) -> None:
        """Nothing to release; present because some apps call it."""
