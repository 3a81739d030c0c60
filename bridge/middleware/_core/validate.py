"""Validation of configured header names and values (raises at construction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge._http.headers import find_forbidden_in_value, invalid_name, invalid_value, is_token

__all__ = ("header_name", "header_pairs", "header_value")


def header_name(name: str | bytes, what: str = "header name") -> bytes:
    """``name`` as lowercase bytes; raises ValueError unless it is an HTTP token."""
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    if not isinstance(text, str) or not is_token(text):
        raise ValueError(invalid_name(name, what))
    return text.lower().encode("ascii")


def header_value(value: str | bytes, name: str | bytes = "header") -> bytes:
    """``value`` as bytes; raises ValueError for CR, LF, NUL or a character outside latin-1."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        raise TypeError(f"value of {name!r} must be str or bytes, not {type(value).__name__}")
    if find_forbidden_in_value(text):
        raise ValueError(invalid_value(name, text))
    try:
        return text.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"value of {name!r} has a character outside latin-1: {text!r}") from None


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
