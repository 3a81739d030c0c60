"""Status codes and their reason phrases: the one table every response uses.

The phrases are :class:`http.HTTPStatus`'s, with RFC 9110's names where older
Pythons still carry the RFC 7231 ones (413, 414, 416, 422), so a status reads
the same on every supported Python. A status outside the table has an empty
reason phrase: RFC 9112 allows it, and the status line stays ``"599 "``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

__all__ = ("reason_phrase", "status_line")

_RFC_9110_NAMES: Final = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}

#: status -> reason phrase, for every status Python knows.
REASON_PHRASES: Final[dict[int, str]] = {
    status.value: _RFC_9110_NAMES.get(status.value, status.phrase) for status in HTTPStatus
}

#: status -> ``"200 OK"``, precomputed: WSGI wants the status as one string per response.
_STATUS_LINES: Final = {status: f"{status} {phrase}" for status, phrase in REASON_PHRASES.items()}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` ("" when there is none)."""
    return REASON_PHRASES.get(status, "")


def status_line(status: int) -> str:
    """``200`` -> ``"200 OK"``; a status without a phrase gives ``"599 "``."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"{status} "
