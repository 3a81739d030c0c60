"""Rate-limit algorithms as pure functions: (state, now, rate, cost) -> RateOutcome.

Theory of operation
-------------------
A key's state is a short tuple of floats (or ``None`` for a key never seen or
forgotten); ``now`` is seconds on any clock that only moves forward. Each
function decides one request and returns the state to store. A denied
request never consumes quota, so its outcome carries the state unchanged.

* ``gcra`` (default): ``(last, level)``, the time of the last admitted
  request and how many requests' worth of quota were in use just after it.
  With interval ``T = period / count`` and capacity ``C = burst + 1``, the
  level drains by one every ``T``; a request of cost ``k`` is admitted when
  ``drained level + k <= C``. This is GCRA (the theoretical arrival time is
  ``last + level * T``) counted in requests rather than in absolute time, so
  that a count of 10**9 stays exact next to a Unix timestamp on Redis's
  clock; and it is nginx's ``limit_req ... burst=N nodelay`` exactly: an idle
  key admits ``N + 1`` requests at once, then one every ``T``.
* ``fixed_window``: ``(window_start, used)``; windows are aligned to multiples
  of the period on the store's clock.
* ``sliding_window``: ``(window_start, used, used_in_previous)``; the previous
  window's count is weighted by how much of it still overlaps the sliding
  window (Cloudflare's approximation): two counters, no request log.

Every algorithm reports the same two quantities, which are the headers' ``r``
and ``t``: ``remaining``, the whole requests of cost 1 that would be admitted
right now after this decision (``count - 1`` after an idle key's first
request, 0 after the last admitted one and on a refusal), and ``reset``, the
seconds until the key is back to its full quota (0 when nothing is in use).

A request whose cost is known only from its response (``count_when``,
``response_cost``) is admitted like any other, holding its reserved cost; once
its response head is known, the ``*_charge`` functions move the state by the
difference (``delta``): more units are added even past the quota (the work
is done), fewer are given back. A window algorithm gives back to the window
the reservation was made in (``at``) and nowhere else, so it is exact. GCRA
gives back from the level it has now: exact unless the level drained below the
reservation while other requests arrived (a request that outlasted its own
share of the period), where it may give back up to ``-delta`` early.

The same arithmetic, in the same order, lives in the Redis Lua scripts
(``_redis_lua.py``); tests compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, NamedTuple, TypeAlias

from bridge.ratelimit._rates import Rate

__all__ = (
    "ALGORITHMS",
    "CHARGES",
    "RateOutcome",
    "State",
    "fixed_window",
    "fixed_window_charge",
    "gcra",
    "gcra_charge",
    "sliding_window",
    "sliding_window_charge",
)

State: TypeAlias = tuple[float, ...]
#: Float slack, in requests, for comparisons of levels and counts (0.1 * 3 != 0.3); far
#: below one request even at a count of 10**9, whose levels carry ~1e-7 of rounding.
_EPS: Final = 1e-6


class RateOutcome(NamedTuple):
    """One rate's decision for one request.

    ``remaining``: requests still admitted right now after this one;
    ``reset``: seconds until the key is back to its full capacity;
    ``retry_after``: seconds until this request would be admitted (0 if it was);
    ``expires_at``: the time after which ``state`` means the same as ``None``.
    """

    allowed: bool
    state: State | None
    remaining: int
    reset: float
    retry_after: float
    expires_at: float


#: ``tuple.__new__`` skips NamedTuple's keyword-handling ``__new__`` (3x faster on the hot path).
_new = tuple.__new__

Algorithm: TypeAlias = Callable[[State | None, float, Rate, int], RateOutcome]
#: ``(state, now, rate, delta, at)``: a reservation made at ``at`` settled ``delta`` units apart.
Charge: TypeAlias = Callable[[State | None, float, Rate, int, float], RateOutcome]


def gcra(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    interval = rate.interval
    capacity = rate.capacity
    level = 0.0
    if state is not None:
        # A clock that stepped back (a failed-over Redis) drains nothing rather than adding.
        level = max(0.0, state[1] - max(0.0, now - state[0]) / interval)
    new_level = level + cost
    if new_level <= capacity + _EPS:
        remaining = int(capacity - new_level + _EPS)
        reset = new_level * interval
        return _new(RateOutcome, (True, (now, new_level), remaining, reset, 0.0, now + reset))
    remaining = max(0, int(capacity - level + _EPS))
    # A cost above the capacity can never pass: send the client away for a full window.
    retry_after = float(rate.window) if cost > capacity else (new_level - capacity) * interval
    reset = level * interval
    return _new(RateOutcome, (False, state, remaining, reset, retry_after, now + reset))


def _window_start(now: float, period: int) -> float:
    return math.floor(now / period) * period


def fixed_window(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    start = _window_start(now, rate.period)
    end = start + rate.period
    used = state[1] if state is not None and state[0] == start else 0.0
    if used + cost <= rate.count:
        used += cost
        reset = end - now if used else 0.0
        return _new(RateOutcome, (True, (start, used), int(rate.count - used), reset, 0.0, end))
    retry_after = end - now if cost <= rate.count else float(rate.period)
    kept = (start, used) if used else None
    reset = end - now if used else 0.0
    return _new(RateOutcome, (False, kept, int(rate.count - used), reset, retry_after, end))


def _sliding_counts(state: State | None, start: float, period: int) -> tuple[float, float]:
    """(used in the current window, used in the previous one) as seen at ``start``."""
    if state is None:
        return 0.0, 0.0
    if state[0] == start:
        return state[1], state[2]
    if state[0] == start - period:
        return 0.0, state[1]
    return 0.0, 0.0


def _sliding_wait(
    rate: Rate, cost: int, now: float, start: float, used: float, prev: float
) -> float:
    """Seconds until ``prev * weight + used + cost <= count`` holds."""
    period = rate.period
    room = rate.count - used - cost
    if cost > rate.count:
        return float(period)
    if room >= 0 and prev > 0:
        return max(0.0, start + period * (1 - room / prev) - now)
    # Not before the next window, where ``used`` becomes the weighted count.
    next_start = start + period
    fade = period * (1 - (rate.count - cost) / used) if used > 0 else 0.0
    return max(0.0, next_start + fade - now)


def _sliding_reset(now: float, start: float, period: int, used: float, prev: float) -> float:
    """Seconds until the weighted count is 0: the current window's requests weigh on
    until the end of the next window, the previous window's until the end of this one."""
    if used:
        return start + 2 * period - now
    if prev:
        return start + period - now
    return 0.0


def sliding_window(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    period = rate.period
    start = _window_start(now, period)
    used, prev = _sliding_counts(state, start, period)
    weighted = prev * (1 - (now - start) / period) + used
    if weighted + cost <= rate.count + _EPS:
        used += cost
        reset = _sliding_reset(now, start, period, used, prev)
        remaining = max(0, int(rate.count - weighted - cost + _EPS))
        return _new(
            RateOutcome, (True, (start, used, prev), remaining, reset, 0.0, start + 2 * period)
        )
    wait = _sliding_wait(rate, cost, now, start, used, prev)
    reset = _sliding_reset(now, start, period, used, prev)
    remaining = max(0, int(rate.count - weighted + _EPS))
    kept = (start, used, prev) if used or prev else None
    return _new(RateOutcome, (False, kept, remaining, reset, wait, start + 2 * period))


ALGORITHMS: Final[dict[str, Algorithm]] = {
    "gcra": gcra,
    "fixed_window": fixed_window,
    "sliding_window": sliding_window,
}


# -- settling a reservation once the response is known ---------------------------------


def gcra_charge(state: State | None, now: float, rate: Rate, delta: int, at: float) -> RateOutcome:
    interval = rate.interval
    level = 0.0
    if state is not None:
        level = max(0.0, state[1] - max(0.0, now - state[0]) / interval)
    new_level = max(0.0, level + delta)
    remaining = max(0, int(rate.capacity - new_level + _EPS))
    reset = new_level * interval
    return _new(RateOutcome, (True, (now, new_level), remaining, reset, 0.0, now + reset))


def fixed_window_charge(
    state: State | None, now: float, rate: Rate, delta: int, at: float
) -> RateOutcome:
    start = _window_start(now, rate.period)
    end = start + rate.period
    used = state[1] if state is not None and state[0] == start else 0.0
    if delta < 0 and _window_start(at, rate.period) != start:
        delta = 0  # the reservation's window is over: it holds nothing any more
    used = max(0.0, used + delta)
    reset = end - now if used else 0.0
    remaining = max(0, int(rate.count - used))
    return _new(RateOutcome, (True, (start, used), remaining, reset, 0.0, end))


def sliding_window_charge(
    state: State | None, now: float, rate: Rate, delta: int, at: float
) -> RateOutcome:
    period = rate.period
    start = _window_start(now, period)
    used, prev = _sliding_counts(state, start, period)
    if delta >= 0:
        used += delta
    else:  # given back to the window that holds the reservation: this one or the last
        reserved_in = _window_start(at, period)
        if reserved_in == start:
            used = max(0.0, used + delta)
        elif reserved_in == start - period:
            prev = max(0.0, prev + delta)
    weighted = prev * (1 - (now - start) / period) + used
    remaining = max(0, int(rate.count - weighted + _EPS))
    reset = _sliding_reset(now, start, period, used, prev)
    return _new(RateOutcome, (True, (start, used, prev), remaining, reset, 0.0, start + 2 * period))


CHARGES: Final[dict[str, Charge]] = {
    "gcra": gcra_charge,
    "fixed_window": fixed_window_charge,
    "sliding_window": sliding_window_charge,
}
