"""The request head the app sees with a :class:`ReplayBody` (both drivers)."""

from __future__ import annotations

from ._convert import head_for_body
from ._heads import RequestHead

__all__ = ("head_announcing",)


def head_announcing(head: RequestHead, length: int) -> RequestHead:
    """``head`` announcing a replayed body of ``length`` bytes (Content-Length, no chunking).

    ``head`` itself when it already does (a body read whole up to its declared
    Content-Length, the usual case), so the scope or environ needs no rewrite.
    Request heads hold one line per name, so checking the first line is exact.
    """
    if (
        head.header(b"content-length") == b"%d" % length
        and head.header(b"transfer-encoding") is None
    ):
        return head
    return head_for_body(head, length)
