"""The short, documented error responses of the buffering middleware.

Two formats: ``"text"`` (``text/plain``: the status line's reason and one
sentence) and ``"problem+json"`` (RFC 9457: ``type``, ``title``, ``status``,
``detail``). Both are a few dozen bytes, carry a Content-Length, and carry
``Connection: close`` when the request body was not read to its end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

from bridge.buffering._account import BodyRejected

__all__ = ("ErrorFormat", "Reply", "render")

ErrorFormat = Literal["text", "problem+json"]
ERROR_FORMATS: Final = ("text", "problem+json")


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
    if error_format == "problem+json":
        document = {
            "type": "about:blank",
            "title": rejection.title,
            "status": rejection.status,
            "detail": rejection.detail,
        }
        body = json.dumps(document, separators=(",", ":")).encode()
        content_type = b"application/problem+json"
    else:
        body = f"{rejection.title}: {rejection.detail}\n".encode()
        content_type = b"text/plain; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close and rejection.close:
        headers.append((b"connection", b"close"))
    return Reply(rejection.status, tuple(headers), body)
