"""The sans-IO part of ResponseBuffering: configuration and one response's plan.

:class:`ResponsePlan` sees the response head, decides (with
:func:`may_buffer`) whether the body is held, holds it in a
:class:`ResponseCollector`, says when holding must stop, and gives the head to
send with the real Content-Length. It never sends anything; the middleware
core's drivers do (see ``response.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from bridge._http.logfields import EventLog
from bridge._http.units import require_size
from bridge.buffering._policy import OVERFLOWS, BypassRule, Overflow, ResponseCollector, may_buffer
from bridge.middleware import RequestHead, set_header

__all__ = ("ResponseConfig", "ResponsePlan")

logger = logging.getLogger("bridge.buffering")
log = EventLog(logger, "ResponseBuffering")


class ResponseConfig:
    """Validated, precomputed ResponseBuffering options (sizes in bytes)."""

    __slots__ = ("bypass", "capacity", "max_file_size", "max_size", "overflow", "spool_dir")

    def __init__(
        self,
        *,
        max_size: int | str,
        overflow: Overflow,
        max_file_size: int | str,
        spool_dir: str | os.PathLike[str] | None,
        bypass: BypassRule | None,
    ) -> None:
        self.max_size = require_size(max_size, option="max_size")
        self.max_file_size = require_size(max_file_size, option="max_file_size")
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be 'file' or 'stream', got {overflow!r}")
        if bypass is not None and not callable(bypass):
            raise TypeError("bypass must be a function (method, status, headers) -> bool or None")
        self.overflow: Overflow = overflow
        self.spool_dir = spool_dir
        self.bypass = bypass
        self.capacity = self.max_size + (self.max_file_size if overflow == "file" else 0)


class ResponsePlan:
    """One response: whether it is held, what is held, the head to send (sans-IO)."""

    __slots__ = ("collector", "config", "head", "headers", "method", "status")

    def __init__(self, config: ResponseConfig, head: RequestHead) -> None:
        self.config = config
        self.head = head  # named in the log line
        self.method = head.method
        self.collector: ResponseCollector | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """See the head; True when the body is to be held."""
        self.status, self.headers = status, headers
        config = self.config
        if may_buffer(self.method, status, headers, capacity=config.capacity, bypass=config.bypass):
            self.collector = ResponseCollector(
                config.max_size,
                config.overflow,
                config.max_file_size,
                None if config.spool_dir is None else os.fspath(config.spool_dir),
            )
            return True
        return False

    def hold(self, chunk: bytes) -> bool:
        """Hold ``chunk``; False when buffering must stop (``chunk`` was not held)."""
        collector = self.collector
        if collector is None:  # pragma: no cover - only called while holding
            return False
        if collector.add(chunk):
            return True
        if collector.refused is not None:
            log.warning("streamed", self.head, "not buffered: %s", collector.refused)
        return False

    @property
    def size(self) -> int:
        """Bytes held so far."""
        return 0 if self.collector is None else self.collector.size

    def final_headers(self) -> list[tuple[bytes, bytes]]:
        """The app's headers with the held body's Content-Length."""
        size = 0 if self.collector is None else self.collector.size
        headers = [pair for pair in self.headers if pair[0].lower() != b"transfer-encoding"]
        return list(set_header(headers, b"content-length", str(size).encode("ascii")))

    def held(self) -> Iterator[bytes]:
        return iter(()) if self.collector is None else self.collector.held()

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()
