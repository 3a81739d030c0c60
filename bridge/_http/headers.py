"""Header rules: what a field name and a field value may hold, which fields are hop-by-hop.

One rule each, used by every component that checks headers (the adapters when
they pass an app's response on, the middleware options at construction):

* A field name is an RFC 9110 token (section 5.1): letters, digits and
  ``!#$%&'*+-.^_`|~``, at least one. ``X(Y)``, ``a b`` or ``a:b`` are not
  names, wherever they come from, and every refusal says so in the same words
  (:func:`invalid_name`).
* A field value must not hold CR, LF or NUL (RFC 9110 section 5.5: "invalid and
  dangerous"); they would split or end the header block. Other octets pass.
* Hop-by-hop fields (RFC 9110 section 7.6.1, and the older ``Keep-Alive``,
  ``Proxy-Connection``, ``Trailers``) describe one connection, which the server
  owns. Responses: an ASGI app's are dropped on the way to a WSGI server (PEP
  3333 forbids a WSGI app to send them), and a response a middleware makes
  under WSGI drops them too; a WSGI app's reach an ASGI server as they are
  (the server applies its own framing and may honour ``Connection: close``).
  Requests: both interfaces carry the client's fields as received (CGI's
  ``HTTP_CONNECTION``, the scope's lines), so an app can still see ``Upgrade``.
  Configured header edits may not touch them.

On the per-response paths a name is checked through a :class:`Memo` of the
names already seen (names repeat from response to response): a dict lookup
that also gives the name in the other interface's type, cheaper than any
character test. A value is tested for the three characters with ``in``
(three ``in`` tests cost a seventh of a regular expression call);
``FORBIDDEN_IN_VALUE`` names them and the tests hold every user to them.
"""

from __future__ import annotations

import re
from typing import Final

from bridge._http.memo import Memo

__all__ = (
    "FORBIDDEN_IN_VALUE",
    "HOP_BY_HOP",
    "HOP_BY_HOP_TEXT",
    "NAME_BYTES",
    "NAME_TEXT",
    "find_forbidden_in_value",
    "invalid_name",
    "invalid_value",
    "is_token",
    "parse_length",
)

_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"

#: ``is_token(name)``: a match (truthy) when ``name`` (str) is a field name, else None.
is_token: Final = re.compile(_TOKEN).fullmatch

#: The characters no field value may hold.
FORBIDDEN_IN_VALUE: Final = "\r\n\0"
#: ``find_forbidden_in_value(value)``: a match (truthy) when ``value`` (str) holds one.
find_forbidden_in_value: Final = re.compile(f"[{FORBIDDEN_IN_VALUE}]").search

#: Lowercase hop-by-hop field names.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
HOP_BY_HOP_TEXT: Final = frozenset(name.decode("ascii") for name in HOP_BY_HOP)


def invalid_name(name: object, what: str = "header name") -> str:
    """The message for a field name that is not a token (the same from every component)."""
    return f"{what} {name!r:.60} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"


def invalid_value(name: object, value: object) -> str:
    """The message for a field value holding CR, LF or NUL."""
    return f"value of {name!r:.60} contains CR, LF or NUL: {value!r:.60}"


def parse_length(value: bytes | str) -> int | None:
    """A Content-Length value as an int; None unless it is 1 to 19 ASCII digits.

    Surrounding whitespace is allowed. A sign, a "+", a decimal point, a list
    ("5, 5"), non-ASCII digits (``str.isdigit`` accepts "²") or more digits than
    an int64 holds are not a length. Each caller decides what None means: a 400
    for a request, a broken app for a response, "unknown" for a size hint.
    """
    text = value.strip()
    if text.isdigit() and text.isascii() and len(text) <= 19:
        return int(text)
    return None


def _name_bytes(name: str) -> bytes:
    if not is_token(name):
        raise ValueError(invalid_name(name))
    return name.lower().encode("ascii")


def _name_text(name: bytes) -> str:
    text = name.decode("latin-1")
    if not is_token(text):
        raise ValueError(invalid_name(text))
    return text


#: A WSGI (str) field name as lowercase ASGI bytes; ValueError when it is not a token.
NAME_BYTES: Final[Memo[str, bytes]] = Memo(_name_bytes, size=1024)
#: An ASGI (bytes) field name as WSGI text, case kept; ValueError when it is not a token.
NAME_TEXT: Final[Memo[bytes, str]] = Memo(_name_text, size=1024)
