"""Validation of configured header names and values (raises at construction)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ("header_name", "header_pairs", "header_value")

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible latin-1 characters, space and tab: no CR, LF, NUL or other controls.
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def header_name(name: str | bytes, what: str = "header name") -> bytes:
    """``name`` as lowercase bytes; raises ValueError unless it is an HTTP token."""
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    if not isinstance(text, str) or not _TOKEN.fullmatch(text):
        raise ValueError(f"{what} {name!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)")
    return text.lower().encode("ascii")


def header_value(value: str | bytes, name: str | bytes = "header") -> bytes:
    """``value`` as bytes; raises ValueError for CR, LF, NUL or other control characters."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        raise TypeError(f"value of {name!r} must be str or bytes, not {type(value).__name__}")
    if not _FIELD_VALUE.fullmatch(text):
        raise ValueError(
            f"value of {name!r} contains a control character (CR, LF, NUL...) or a "
            f"character outside latin-1: {text!r}"
        )
    return text.strip(" \t").encode("latin-1")


def header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, what: str
) -> tuple[tuple[bytes, bytes], ...]:
    """Validated ``(name, value)`` byte pairs from a mapping or a list of pairs."""
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"{what}: give a mapping or (name, value) pairs, not {item!r}")
        name, value = item
        out.append((header_name(name, f"{what}: header name"), header_value(value, name)))
    return tuple(out)
