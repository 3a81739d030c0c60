"""Pure rules for turning an ASGI response into a WSGI one, and planning a request body.

Nothing here does I/O: each function takes plain values and returns plain
values or raises with a message meant for one log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from bridge._http.headers import HOP_BY_HOP, NAME_TEXT, invalid_value
from bridge._http.status import status_line as _status_line
from bridge._http.translate import parse_content_length, undelivered_body
from bridge._http.types import WsgiHeaders

__all__ = (
    "BodyPlan",
    "plan_body",
    "status_line",
    "wsgi_headers",
)


def status_line(status: object) -> str:
    """``200`` -> ``"200 OK"``; raises :class:`RuntimeError` for a non-integer or out-of-range."""
    if type(status) is not int or not 100 <= status <= 599:
        raise RuntimeError(f"invalid status in http.response.start: {status!r}")
    return _status_line(status)


def wsgi_headers(raw: Iterable[Any]) -> WsgiHeaders:
    """ASGI response header pairs to a WSGI header list, order and repeats kept.

    Hop-by-hop headers are dropped (the WSGI server owns the connection).
    Raises :class:`RuntimeError` for a pair that is not two byte strings, a
    name that is not an HTTP token, or a value with CR, LF or NUL.
    """
    headers: WsgiHeaders = []
    for pair in raw:
        try:
            name_bytes, value_bytes = pair
        except (TypeError, ValueError):
            raise RuntimeError(f"invalid response header {pair!r}: not a pair") from None
        if not isinstance(name_bytes, bytes) or not isinstance(value_bytes, bytes):
            raise RuntimeError(f"invalid response header {pair!r}: name and value must be bytes")
        try:
            name = NAME_TEXT[name_bytes]
        except ValueError as exc:
            raise RuntimeError(f"invalid response {exc}") from None
        value = value_bytes.decode("latin-1")
        if "\r" in value or "\n" in value or "\0" in value:  # FORBIDDEN_IN_VALUE
            raise RuntimeError(invalid_value(name, value_bytes))
        if name_bytes.lower() in HOP_BY_HOP:
            continue
        headers.append((name, value))
    return headers


class BodyPlan(NamedTuple):
    """How to read a request body from ``wsgi.input``.

    ``length`` is the declared Content-Length, or None to read until EOF
    (only when the server sets ``wsgi.input_terminated``). ``empty`` is True
    when there is no body at all.
    """

    length: int | None
    empty: bool


def plan_body(environ: Mapping[str, Any]) -> BodyPlan:
    """Decide how much of ``wsgi.input`` belongs to this request (PEP 3333).

    A missing CONTENT_LENGTH means "read to EOF" only when the server promises
    ``wsgi.input_terminated``; otherwise PEP 3333 says the body is empty, unless
    the request says a chunked body follows (``Transfer-Encoding``): that body
    cannot be read (wsgiref hands over the raw socket), so it is refused with
    411 rather than lost, as mod_wsgi refuses it. Raises :class:`BadRequest`
    (400) for a non-numeric or negative value.
    """
    raw = environ.get("CONTENT_LENGTH", "")
    if raw:
        length = parse_content_length([str(raw).encode("latin-1", "replace")])
        if length is not None:
            return BodyPlan(length, length == 0)
    if environ.get("wsgi.input_terminated"):
        return BodyPlan(None, False)
    if environ.get("HTTP_TRANSFER_ENCODING"):
        raise undelivered_body()
    return BodyPlan(0, True)
