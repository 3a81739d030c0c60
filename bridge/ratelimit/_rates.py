"""Rate strings people already write: ``"100/minute"``, ``"10/second burst 20"``.

Grammar (case-insensitive, spaces optional around the separators)::

    rates := rate ((";" | "," | "|") rate)*
    rate  := COUNT ("/" | "per") [MULTIPLIER] UNIT ["burst" EXCESS]

This is the notation of the ``limits`` library (hence of Flask-Limiter and
slowapi), with the same units and lengths -- a month is 30 days and a year
360, as there -- plus short unit forms and ``burst``, which ``limits`` lacks.

``UNIT`` is one of second, minute, hour, day, month, year (and the short forms
s, sec, m, min, h, hr, d; plurals accepted). ``burst`` is nginx's ``burst=N``: how
many requests beyond the first one may arrive at the same instant. Without
it a rate of N per period admits N at once (``burst N-1``), which is what a
"100 per minute" quota means to people used to window-based limiters.

Every malformed string raises :class:`ValueError` at construction, naming the
piece that is wrong and what is accepted instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ("Rate", "parse_rates")

#: ``limits``' lengths, so a configuration moved from Flask-Limiter or slowapi means the same.
_MONTH: Final = 30 * 86400
_YEAR: Final = 12 * _MONTH
_UNITS: Final = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "month": _MONTH,
    "year": _YEAR,
}
_UNIT_NAMES: Final = {
    1: "second",
    60: "minute",
    3600: "hour",
    86400: "day",
    _MONTH: "month",
    _YEAR: "year",
}
#: Every separator ``limits`` accepts between two rates.
_SEPARATORS: Final = re.compile(r"[;,|]")
_RATE: Final = re.compile(
    r"""\s*(?P<count>\d+)\s*(?:/|per)\s*(?P<mult>\d+)?\s*(?P<unit>[a-z]+)
        (?:\s+burst\s+(?P<burst>\d+))?\s*""",
    re.VERBOSE,
)
#: Bounds that keep Lua's doubles and the headers' integers exact.
_MAX_COUNT: Final = 10**9
_MAX_PERIOD: Final = 10 * _YEAR


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds, admitting ``burst + 1`` at once.

    ``name`` is the canonical text (``"10/second"``), used as the policy name
    in the ``RateLimit`` headers and in store keys. ``capacity`` (requests
    admitted at one instant on an idle key, nginx's ``burst + 1``),
    ``interval`` (seconds between two requests at the sustained rate, GCRA's
    emission interval) and ``window`` (whole seconds in which an idle key's
    capacity is spent and restored) are derived once.
    """

    count: int
    period: int
    burst: int
    name: str
    capacity: int = field(init=False)
    interval: float = field(init=False)
    window: int = field(init=False)

    def __post_init__(self) -> None:
        interval = self.period / self.count
        capacity = self.burst + 1
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "window", max(1, math.ceil(capacity * interval - 1e-9)))


def _unit_seconds(unit: str, text: str) -> int:
    singular = unit.removesuffix("s")
    # Plurals of whole words only: "ms" must not read as minutes.
    seconds = _UNITS.get(unit) or (_UNITS.get(singular) if len(singular) > 2 else None)
    if seconds is None:
        known = ", ".join(sorted(set(_UNIT_NAMES.values())))
        raise ValueError(f"unknown time unit {unit!r} in rate {text!r}; use one of {known}")
    return seconds


def _canonical(count: int, mult: int, unit_seconds: int, burst: int | None) -> str:
    unit = _UNIT_NAMES[unit_seconds]
    per = f"{mult} {unit}s" if mult != 1 else unit
    return f"{count}/{per}" + (f" burst {burst}" if burst is not None else "")


def parse_rate(text: str) -> Rate:
    """Parse one rate such as ``"10/second"`` or ``"1000 per day burst 50"``."""
    match = _RATE.fullmatch(text.lower())
    if match is None:
        raise ValueError(
            f"malformed rate {text!r}; write it as '<count>/<unit>' or "
            "'<count> per <n> <unit>', optionally followed by 'burst <n>', "
            "e.g. '100/minute' or '10/second burst 20'"
        )
    count = int(match["count"])
    mult = int(match["mult"] or 1)
    unit_seconds = _unit_seconds(match["unit"], text)
    period = mult * unit_seconds
    if not 0 < count <= _MAX_COUNT:
        raise ValueError(f"rate {text!r}: the count must be between 1 and {_MAX_COUNT}")
    if not 0 < period <= _MAX_PERIOD:
        raise ValueError(f"rate {text!r}: the period must be between 1 second and 10 years")
    burst = None if match["burst"] is None else int(match["burst"])
    if burst is not None and burst > _MAX_COUNT:
        raise ValueError(f"rate {text!r}: burst must be at most {_MAX_COUNT}")
    name = _canonical(count, mult, unit_seconds, burst)
    return Rate(count, period, count - 1 if burst is None else burst, name)


def parse_rates(spec: str | Rate | tuple[Rate, ...] | list[str | Rate]) -> tuple[Rate, ...]:
    """Parse ``"10/second;1000/day"`` (or a list of strings / :class:`Rate`) into rates.

    ``,`` and ``|`` separate rates as well as ``;``, as in the ``limits`` library.

    Raises :class:`ValueError` for an empty or malformed specification and for two
    rates with the same name (their headers and store keys would collide).
    """
    if isinstance(spec, Rate):
        return (spec,)
    if isinstance(spec, str):
        parts: list[str | Rate] = [p for p in _SEPARATORS.split(spec) if p.strip()]
    else:
        parts = list(spec)
    if not parts:
        raise ValueError(f"no rate given in {spec!r}; write e.g. '100/minute'")
    rates = tuple(p if isinstance(p, Rate) else parse_rate(p) for p in parts)
    names = [r.name for r in rates]
    if len(set(names)) != len(names):
        raise ValueError(f"the same rate appears twice in {spec!r}")
    return rates
