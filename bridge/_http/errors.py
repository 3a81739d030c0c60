"""Error bodies: the one renderer for every response bridge answers by itself.

Adapters and middleware answer some requests without the app (a 500 when the
app fails before its response, a 400 / 431 for a head that cannot be
translated, a 413 / 429 / 503 from a middleware). They all render here, so the
same status and detail give the same bytes whichever component answered.

Two formats, named the same in every option (``error_format``):

* ``"text"``: ``text/plain; charset=utf-8``, one line: the reason phrase, then
  ``": "`` and the detail when there is one (``"Bad Request: invalid
  Content-Length: b'x'\\n"``).
* ``"problem+json"``: RFC 9457 ``application/problem+json`` with ``type``
  (``about:blank``), ``title`` (the reason phrase), ``status``, ``detail`` when
  given, then any extra members (which may override ``type`` or ``title``).

The detail is a short sentence for the client; never put an exception's text
or a traceback in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple

from bridge._http.status import reason_phrase

__all__ = (
    "ERROR_FORMATS",
    "ErrorBody",
    "ErrorFormat",
    "check_error_format",
    "error_body",
    "error_title",
)

ErrorFormat = Literal["text", "problem+json"]
ERROR_FORMATS: Final = ("text", "problem+json")

TEXT: Final = b"text/plain; charset=utf-8"
PROBLEM_JSON: Final = b"application/problem+json"


class ErrorBody(NamedTuple):
    """A rendered error: its Content-Type and its body."""

    content_type: bytes
    body: bytes

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """Content-Type and Content-Length as lowercase ASGI header pairs."""
        return (b"content-type", self.content_type), (b"content-length", b"%d" % len(self.body))


def error_title(status: int) -> str:
    """The title of an error response: the reason phrase, ``"Error"`` when there is none."""
    return reason_phrase(status) or "Error"


def error_body(
    status: int,
    detail: str | None = None,
    error_format: ErrorFormat = "text",
    members: Mapping[str, Any] | None = None,
) -> ErrorBody:
    """The body of an error response for ``status`` (see the module docstring).

    ``members`` are extra problem+json members; the text format ignores them.
    """
    if error_format == "problem+json":
        document: dict[str, Any] = {"type": "about:blank", "title": error_title(status)}
        document["status"] = status
        if detail is not None:
            document["detail"] = detail
        if members:
            document.update(members)
        return ErrorBody(PROBLEM_JSON, json.dumps(document, separators=(",", ":")).encode())
    title = error_title(status)
    text = f"{title}: {detail}\n" if detail else f"{title}\n"
    return ErrorBody(TEXT, text.encode("utf-8"))


def check_error_format(value: object, what: str = "error_format") -> ErrorFormat:
    """``value`` if it names an error format; raises ValueError naming the choices."""
    if value == "text" or value == "problem+json":
        return value
    raise ValueError(f"{what} must be 'text' or 'problem+json', not {value!r}")
