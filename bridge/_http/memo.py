"""A bounded memo for small translations repeated from request to request.

Header names and lines repeat across requests (Content-Type, the lines a
middleware adds), so their conversions are made once: ``memo[key]`` is a
plain dict lookup when the key was seen (no Python call), and calls
``make(key)`` once when it was not. Memory is bounded by clearing the memo
when it is full, which keeps the common keys a lookup away at once again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ("Memo",)

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V], Generic[K, V]):
    """``memo[key]``: ``make(key)``, made once; at most ``size`` keys are kept, and
    only those ``keep(key)`` accepts (default: every key)."""

    __slots__ = ("_keep", "_make", "_size")

    def __init__(
        self,
        make: Callable[[K], V],
        size: int = 512,
        keep: Callable[[K], bool] | None = None,
    ) -> None:
        super().__init__()
        self._make = make
        self._size = size
        self._keep = keep

    def __missing__(self, key: K) -> V:
        value = self._make(key)
        if self._keep is None or self._keep(key):
            if len(self) >= self._size:
                self.clear()
            self[key] = value
        return value
