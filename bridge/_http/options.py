"""Option rules shared by every middleware: methods, renamed options (sans-IO).

Configuration is checked once, at construction, and every error names the
option and says what to write instead. ``methods=`` takes one spelling
everywhere: a string (``"POST"`` or ``"GET, POST"``) or a list of strings,
normalized to uppercase tokens. An old option name keeps working for one
release through :func:`renamed_option`, which warns with the new name.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable
from typing import Final, TypeVar

__all__ = ("UNSET", "http_methods", "renamed_option", "warn_deprecated")

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

T = TypeVar("T")


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


#: Default of a deprecated option: tells "not given" from any value the user may pass.
UNSET: Final = _Unset()


def http_methods(methods: object, what: str = "methods") -> frozenset[str] | None:
    """``methods=`` as uppercase method names; None (every method) stays None.

    A string is one method or a comma-separated list (``"GET, POST"``); a list
    holds one method per item. Anything that is not an HTTP token raises.
    """
    if methods is None:
        return None
    if isinstance(methods, str):
        items: list[object] = list(methods.split(","))
    elif isinstance(methods, bytes) or not isinstance(methods, Iterable):
        raise TypeError(f"{what}: give a method such as 'POST' or a list of them, not {methods!r}")
    else:
        items = list(methods)
    found = set()
    for item in items:
        name = item.strip() if isinstance(item, str) else item
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(
                f"{what}: {item!r} is not an HTTP method; write e.g. 'POST', 'GET, POST' "
                f"or ['GET', 'POST']"
            )
        found.add(name.upper())
    if not found:
        raise ValueError(f"{what} is empty, so it matches no request; leave it out for all")
    return frozenset(found)


def renamed_option(owner: str, old: str, old_value: object, new: str, new_value: T) -> T:
    """``new_value``, or the deprecated ``old_value`` (with a warning) when only it was given."""
    if old_value is UNSET:
        return new_value
    if new_value is not None:
        raise TypeError(f"{owner}: give {new}= only; {old}= is its deprecated old name")
    warn_deprecated(f"{owner}({old}=...) is deprecated and will be removed; use {new}=...")
    return old_value  # type: ignore[return-value]


def warn_deprecated(message: str) -> None:
    """A DeprecationWarning attributed to the user's line (the first frame outside bridge)."""
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is warn_deprecated's caller, ``frame``
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("bridge."):
        frame = frame.f_back
        level += 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)
