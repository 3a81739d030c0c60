"""Configuration values with units: sizes ("10MB", "512k", bytes) and durations.

Both parsers run at construction time, so a typo in a deployment setting fails
when the app starts, with a message that names the option and says what to
write instead. Nothing here does I/O.

Size suffixes (case-insensitive, optional space before the unit):

* none or ``b``: bytes;
* ``k`` / ``m`` / ``g``: binary multiples, as in nginx (``10m`` is 10 * 1024 * 1024);
* ``KiB`` / ``MiB`` / ``GiB``: binary multiples too;
* ``kB`` / ``MB`` / ``GB``: decimal (SI) multiples (``10MB`` is 10 000 000).
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ("parse_seconds", "parse_size", "require_size")

_KIB: Final = 1024
_MULTIPLIERS: Final = {
    "": 1,
    "b": 1,
    "k": _KIB,
    "m": _KIB**2,
    "g": _KIB**3,
    "kib": _KIB,
    "mib": _KIB**2,
    "gib": _KIB**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_SIZE_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_SIZE_HINT: Final = "a size such as 10MB, 512k, 1GiB or a whole number of bytes"


def parse_size(value: object, *, option: str, allow_none: bool = True) -> int | None:
    """Bytes for a size setting; ``None`` means "no limit" when allowed.

    Raises :class:`TypeError` or :class:`ValueError` naming ``option``.
    """
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{option} is required: give {_SIZE_HINT}")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{option} must be {_SIZE_HINT}, not {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{option} must not be negative, got {value}")
        return value
    match = _SIZE_RE.fullmatch(value)
    multiplier = _MULTIPLIERS.get(match.group(2).lower()) if match else None
    if match is None or multiplier is None:
        raise ValueError(f"{option} must be {_SIZE_HINT}, got {value!r}")
    return int(float(match.group(1)) * multiplier)


def require_size(value: object, *, option: str) -> int:
    """Like :func:`parse_size`, but ``None`` is refused."""
    size = parse_size(value, option=option, allow_none=False)
    if size is None:  # pragma: no cover - parse_size already refused None
        raise TypeError(f"{option} is required")
    return size


def parse_seconds(value: object, *, option: str) -> float | None:
    """Seconds for a timeout setting; ``None`` disables it.

    Accepts a positive int or float. Raises :class:`TypeError` or
    :class:`ValueError` naming ``option``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{option} must be a number of seconds (int or float) or None, "
            f"not {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option} must be a positive, finite number of seconds, got {value!r}")
    return float(value)
