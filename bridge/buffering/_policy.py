"""Whether a response may be buffered, and the collector that buffers it.

A response is never buffered when holding it would change what the client
gets, or could not help: a HEAD request or a 1xx/204/304 status (no body to buffer; the
app's own Content-Length is the one a GET would carry and is left alone),
``text/event-stream`` (a stream must flow), ``X-Accel-Buffering: no`` (the
header nginx honours; it is passed on so an nginx in front honours it too),
a Content-Length already larger than everything the buffer may hold, or the
application's own ``bypass`` rule.

:class:`ResponseCollector` holds the body: up to ``max_size`` in memory,
then (``overflow="file"``) in a temporary file up to ``max_file_size``. When
a limit is crossed it tells the caller to stop buffering ("stream once over"):
send the head without a Content-Length, replay what it holds, and pass the
rest of the body through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, Literal

from bridge._http.headers import parse_length
from bridge.buffering._spool import Spool, SpoolRefused

__all__ = ("Overflow", "ResponseCollector", "may_buffer")

Overflow = Literal["file", "stream"]
OVERFLOWS: Final = ("file", "stream")
BypassRule = Callable[[str, int, "list[tuple[bytes, bytes]]"], bool]


def may_buffer(
    method: str,
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    capacity: int,
    bypass: BypassRule | None = None,
) -> bool:
    """Whether this response is buffered (``capacity``: memory plus file limit)."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return False
    content_type = opt_out = length = None
    for name, value in headers:  # one pass; the first line of each name counts
        lower = name.lower()
        if lower == b"content-type":
            content_type = value if content_type is None else content_type
        elif lower == b"x-accel-buffering":
            opt_out = value if opt_out is None else opt_out
        elif lower == b"content-length":
            length = value if length is None else length
    if content_type is not None and content_type.lower().startswith(b"text/event-stream"):
        return False
    if opt_out is not None and opt_out.strip().lower() == b"no":
        return False
    if length is not None and (parse_length(length) or 0) > capacity:
        return False
    return not (bypass is not None and bypass(method, status, headers))


class ResponseCollector:
    """Holds one response body until it ends or crosses a limit."""

    __slots__ = ("_max_total", "refused", "spool")

    def __init__(
        self,
        max_size: int,
        overflow: Overflow,
        max_file_size: int,
        directory: str | None = None,
    ) -> None:
        self.spool = Spool(max_size, directory)
        self._max_total = max_size if overflow == "stream" else max_size + max_file_size
        self.refused: SpoolRefused | None = None

    def add(self, chunk: bytes) -> bool:
        """Hold ``chunk``; False when it crossed a limit (the caller streams from now on).

        The chunk that crosses is not held: the caller replays :meth:`held`
        and then sends it. A disk that refuses the file also ends buffering
        (:attr:`refused` says why); what was held is still replayed.
        """
        if self.spool.size + len(chunk) > self._max_total:
            return False
        try:
            self.spool.write(chunk)
        except SpoolRefused as exc:
            self.refused = exc
            return False
        return True

    def held(self) -> Iterator[bytes]:
        return self.spool.iter_chunks()

    @property
    def size(self) -> int:
        return self.spool.size

    def close(self) -> None:
        self.spool.close()
