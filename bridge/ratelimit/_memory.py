"""``MemoryStore``: the per-process store, bounded, O(1) per check.

Invariants:

* Every operation is O(1): one dict lookup, one LRU move, at most one
  expired entry dropped from the cold end and at most one entry evicted.
  Nothing ever walks all keys, and there is no sweeper thread.
* At most ``max_keys`` rate-limit entries exist at any time. When a new key
  would exceed the bound, the least recently used key is evicted; evictions
  are counted (``evictions``) and logged at most once per ``log_interval``
  seconds, so key spraying shows up in the logs without flooding them.
* The lock is held only for the arithmetic (never across I/O or an await),
  so WSGI threads serialise for a microsecond and ASGI tasks never block the
  loop for longer than that.
* Times come from the caller's clock (``time.monotonic`` in the middleware);
  the store never reads a clock itself except to throttle its log line.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge.ratelimit._algorithms import ALGORITHMS, CHARGES, Algorithm, RateOutcome, State
from bridge.ratelimit._rates import Rate
from bridge.ratelimit._store import Reservation, Verdict

__all__ = ("MemoryStore",)

logger = logging.getLogger("bridge.ratelimit")
log: Final = EventLog(logger, "MemoryStore")

#: ``(expires_at, state)``: one rate's state itself, several rates' states in a tuple
#: (a key's rates never change: their names are part of the key).
_Entry = tuple[float, Any]
_DEFAULT_MAX_KEYS: Final = 100_000
_new = tuple.__new__


def _decide_all(
    decide: Algorithm,
    states: tuple[State | None, ...] | None,
    now: float,
    rates: Sequence[Rate],
    cost: int,
) -> tuple[bool, tuple[RateOutcome, ...]]:
    """Every rate's outcome; when one denies, the others are reported unconsumed (cost 0)."""
    outcomes = tuple(
        decide(None if states is None else states[i], now, rate, cost)
        for i, rate in enumerate(rates)
    )
    if all(o.allowed for o in outcomes):
        return True, outcomes
    return False, tuple(
        decide(None if states is None else states[i], now, rates[i], 0) if o.allowed else o
        for i, o in enumerate(outcomes)
    )


class MemoryStore:
    """Rate-limit and concurrency state in this process's memory.

    Correct for one process (threads and async tasks alike); with several
    workers each has its own counts, so use :class:`~bridge.RedisStore` to
    share a limit between processes or machines.

    :param max_keys: at most this many keys are remembered (default 100 000,
        about 35 MB); beyond it the least recently used key is forgotten,
        which resets its limit. Evictions are counted in :attr:`evictions`
        and logged on the ``bridge.ratelimit`` logger.
    :param log_interval: minimum seconds between two eviction log lines (60).

    .. versionadded:: 0.1
    """

    local = True

    def __init__(self, max_keys: int = _DEFAULT_MAX_KEYS, *, log_interval: float = 60.0) -> None:
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be a positive integer, not {max_keys!r}")
        self.max_keys = max_keys
        self.log_interval = log_interval
        self.evictions = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._logged_evictions = 0
        self._next_log = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def check(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        """Decide one request of ``cost`` against every rate for ``key`` (see :class:`Store`)."""
        decide = ALGORITHMS[algorithm]
        entries = self._entries
        lock = self._lock
        lock.acquire()
        try:
            entry = entries.get(key)
            # ``>=``: at its expiry a state still means what it says (a drained level); on a clock
            # as large as a Unix timestamp, ``now + 60 ns`` rounds to ``now``.
            states = entry[1] if entry is not None and entry[0] >= now else None
            if len(rates) == 1:
                outcome = decide(states, now, rates[0], cost)
                outcomes: tuple[RateOutcome, ...] = (outcome,)
                allowed = outcome[0]
                if allowed:
                    entries[key] = (outcome[5], outcome[1])
            else:
                allowed, outcomes = _decide_all(decide, states, now, rates, cost)
                if allowed:
                    expires = max(o.expires_at for o in outcomes)
                    entries[key] = (expires, tuple([o.state for o in outcomes]))
            if allowed:
                entries.move_to_end(key)
                self._trim(now)
        finally:
            lock.release()
        return _new(Verdict, (allowed, outcomes, False))

    def _trim(self, now: float) -> None:
        """Drop one expired entry from the cold end; evict LRU entries beyond the bound."""
        entries = self._entries
        oldest = next(iter(entries))
        if entries[oldest][0] < now:
            del entries[oldest]
        elif len(entries) > self.max_keys:
            entries.popitem(last=False)
            self.evictions += 1
            if now >= self._next_log:
                self._log_evictions(now)

    def _log_evictions(self, now: float) -> None:
        fresh = self.evictions - self._logged_evictions
        self._logged_evictions = self.evictions
        self._next_log = now + self.log_interval
        log.warning(
            "evicted",
            None,
            "rate-limit MemoryStore is full (max_keys=%d): evicted %d least recently used "
            "keys (%d in total); many distinct keys may mean key spraying",
            self.max_keys,
            fresh,
            self.evictions,
        )

    async def check_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        return self.check(key, rates, algorithm, cost, now)

    def reserve(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation:
        """:meth:`check`, remembering what it held (a :class:`~bridge.ratelimit.Reservation`)."""
        return Reservation(self.check(key, rates, algorithm, cost, now), cost, now)

    async def reserve_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation:
        return self.reserve(key, rates, algorithm, cost, now)

    def settle(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None:
        """Charge ``charge`` units for a request that reserved ``reservation.cost``."""
        delta = charge - reservation.cost
        if delta == 0:
            return None
        settle, at = CHARGES[algorithm], reservation.at
        entries = self._entries
        with self._lock:
            entry = entries.get(key)
            states = entry[1] if entry is not None and entry[0] >= now else None
            if len(rates) == 1:
                outcome = settle(states, now, rates[0], delta, at)
                outcomes: tuple[RateOutcome, ...] = (outcome,)
                entries[key] = (outcome.expires_at, outcome.state)
            else:
                outcomes = tuple(
                    settle(None if states is None else states[i], now, rate, delta, at)
                    for i, rate in enumerate(rates)
                )
                expires = max(o.expires_at for o in outcomes)
                entries[key] = (expires, tuple([o.state for o in outcomes]))
            entries.move_to_end(key)
            self._trim(now)
        return outcomes

    async def settle_async(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None:
        return self.settle(key, rates, algorithm, reservation, charge, now)

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        """Take one of ``limit`` in-flight slots for ``key``; False when all are taken."""
        with self._lock:
            holders = self._in_flight.get(key)
            if holders is None:
                self._in_flight[key] = {token}
                return True
            if len(holders) >= limit:
                return False
            holders.add(token)
            return True

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool:
        return self.acquire(key, limit, token, now)

    def release(self, key: str, token: str) -> None:
        """Give back the slot ``token`` holds (a no-op when it holds none)."""
        with self._lock:
            holders = self._in_flight.get(key)
            if holders is not None:
                holders.discard(token)
                if not holders:
                    del self._in_flight[key]

    async def release_async(self, key: str, token: str) -> None:
        self.release(key, token)

    def in_flight(self, key: str) -> int:
        """Requests currently holding a slot for ``key``."""
        return len(self._in_flight.get(key, ()))
