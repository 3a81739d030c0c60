"""Rate-limit algorithms as pure functions: (state, now, rate, cost) -> RateOutcome.

Theory of operation
-------------------
A key's state is a short tuple of floats (or ``None`` for a key never seen or
forgotten); ``now`` is seconds on any clock that only moves forward. Each
function decides one request and returns the state to store. A denied
request never consumes quota, so its outcome carries the state unchanged.

* ``gcra`` (default): one timestamp, the theoretical arrival time (TAT). With
  interval ``T = period / count`` and capacity ``C = burst + 1``, a request of
  cost ``k`` is admitted when ``max(TAT, now) + k*T - now <= C*T``. This is
  nginx's ``limit_req ... burst=N nodelay`` exactly: an idle key admits
  ``N + 1`` requests at once, then one every ``T``.
* ``fixed_window``: ``(window_start, used)``; windows are aligned to multiples
  of the period on the store's clock.
* ``sliding_window``: ``(window_start, used, used_in_previous)``; the previous
  window's count is weighted by how much of it still overlaps the sliding
  window (Cloudflare's approximation): two counters, no request log.

The same arithmetic, in the same order, lives in the Redis Lua script
(``_redis_lua.py``); tests compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, NamedTuple, TypeAlias

from bridge.ratelimit._rates import Rate

__all__ = ("ALGORITHMS", "RateOutcome", "State", "fixed_window", "gcra", "sliding_window")

State: TypeAlias = tuple[float, ...]
#: Float slack for comparisons of sums of intervals (0.1 * 3 != 0.3).
_EPS: Final = 1e-9


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


def gcra(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    interval = rate.interval
    depth = rate.capacity * interval
    tat = state[0] if state is not None and state[0] > now else now
    new_tat = tat + cost * interval
    if new_tat - now <= depth + _EPS:
        remaining = int((depth - (new_tat - now)) / interval + _EPS)
        return _new(RateOutcome, (True, (new_tat,), remaining, new_tat - now, 0.0, new_tat))
    remaining = max(0, int((depth - (tat - now)) / interval + _EPS))
    # A cost above the capacity can never pass: send the client away for a full window.
    retry_after = float(rate.window) if cost > rate.capacity else new_tat - depth - now
    kept = None if state is None else (tat,)
    return _new(RateOutcome, (False, kept, remaining, tat - now, retry_after, tat))


def _window_start(now: float, period: int) -> float:
    return math.floor(now / period) * period


def fixed_window(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    start = _window_start(now, rate.period)
    end = start + rate.period
    used = state[1] if state is not None and state[0] == start else 0.0
    if used + cost <= rate.count:
        used += cost
        return _new(RateOutcome, (True, (start, used), int(rate.count - used), end - now, 0.0, end))
    retry_after = end - now if cost <= rate.count else float(rate.period)
    kept = (start, used) if used else None
    return _new(RateOutcome, (False, kept, int(rate.count - used), end - now, retry_after, end))


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


def sliding_window(state: State | None, now: float, rate: Rate, cost: int) -> RateOutcome:
    period = rate.period
    start = _window_start(now, period)
    used, prev = _sliding_counts(state, start, period)
    weighted = prev * (1 - (now - start) / period) + used
    if weighted + cost <= rate.count + _EPS:
        used += cost
        reset = (start + 2 * period if used else start + period) - now
        remaining = max(0, int(rate.count - weighted - cost + _EPS))
        return _new(
            RateOutcome, (True, (start, used, prev), remaining, reset, 0.0, start + 2 * period)
        )
    wait = _sliding_wait(rate, cost, now, start, used, prev)
    reset = (start + 2 * period if used else start + period) - now
    remaining = max(0, int(rate.count - weighted + _EPS))
    kept = (start, used, prev) if used or prev else None
    return _new(RateOutcome, (False, kept, remaining, reset, wait, start + 2 * period))


ALGORITHMS: Final[dict[str, Algorithm]] = {
    "gcra": gcra,
    "fixed_window": fixed_window,
    "sliding_window": sliding_window,
}
