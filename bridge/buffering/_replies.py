"""The short, documented error responses of the buffering middleware.

Rendered by bridge's one error renderer (:mod:`bridge._http.errors`), in the
configured ``error_format``: ``"text"`` (the reason phrase and one sentence) or
``"problem+json"`` (RFC 9457). Each carries ``Connection: close`` when the request
body was not read to its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge._http.errors import ERROR_FORMATS, ErrorFormat, error_body
from bridge.buffering._account import BodyRejected

__all__ = ("ERROR_FORMATS", "ErrorFormat", "Reply", "render")


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete response: status, headers (lowercase names), body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def render(rejection: BodyRejected, error_format: ErrorFormat, *, close: bool = True) -> Reply:
    """The response for ``rejection`` in ``error_format``.

    ``close=False`` leaves out ``Connection: close`` (a WSGI app may not send it).
    """
    rendered = error_body(rejection.status, rejection.detail, error_format)
    headers = rendered.headers
    if close and rejection.close:
        headers += ((b"connection", b"close"),)
    return Reply(rejection.status, headers, rendered.body)
