"""Whether a shared store's server is up, and who may probe it while it is down.

Invariants: an outage is logged once when it starts and once when it ends;
while down, at most one caller at a time probes the server, no earlier than
the backoff allows (doubling from ``first`` to ``most`` seconds); a probe that
ends without an answer (cancelled, or a bug) hands probing back.
"""

from __future__ import annotations

import logging
import threading
import time

from bridge._http.logfields import EventLog

__all__ = ("Health",)

logger = logging.getLogger("bridge.ratelimit")
log = EventLog(logger, "RedisStore")


class Health:
    """Up/down state shared by every thread and task of one store."""

    def __init__(self, backoff: tuple[float, float], policy: str, where: str) -> None:
        self.first, self.most = backoff
        self.policy = policy
        self.where = where
        self.down_since: float | None = None
        self.delay = self.first
        self.next_probe = 0.0
        self.probing = False
        self.failures = 0
        self._lock = threading.Lock()

    def may_try(self) -> bool:
        """True when Redis is up, or when this caller is the one to probe it now."""
        if self.down_since is None:
            return True
        with self._lock:
            if self.probing or time.monotonic() < self.next_probe:
                return False
            self.probing = True
            return True

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        outage = self._end_outage()
        if outage is not None:  # None: another thread saw the recovery first and logged it
            log.warning(
                "recovered",
                None,
                "Redis at %s is back after %.1f s; rate limits are shared again",
                self.where,
                outage,
                ratelimit_store=self.where,
                ratelimit_outage="ended",
                ratelimit_outage_seconds=round(outage, 3),
            )

    def _end_outage(self) -> float | None:
        with self._lock:
            since = self.down_since
            self.down_since, self.probing, self.delay = None, False, self.first
        return None if since is None else time.monotonic() - since

    def abandon(self) -> None:
        """The probe ended without an answer about Redis (cancelled, or a bug)."""
        if self.probing:
            with self._lock:
                self.probing = False

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            starting = self.down_since is None
            if starting:
                self.down_since, self.delay = now, self.first
            else:
                self.delay = min(self.delay * 2, self.most)
            self.next_probe, self.probing = now + self.delay, False
        if starting:
            log.warning(
                "unavailable",
                None,
                "Redis at %s is unavailable (%s: %s); rate limiting is %s until it is back",
                self.where,
                type(exc).__name__,
                exc,
                self.policy,
                ratelimit_store=self.where,
                ratelimit_outage="started",
                ratelimit_failure=self.policy,
                ratelimit_error=f"{type(exc).__name__}: {exc}",
            )


class Saturation:
    """Requests turned away because every connection was busy: counted, logged once a minute."""

    interval = 60.0

    def __init__(self, where: str, bound: int, policy: str) -> None:
        self.where = where
        self.bound = bound
        self.policy = policy
        self.count = 0
        self._logged = 0
        self._next_log = float("-inf")
        self._lock = threading.Lock()

    def note(self) -> None:
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if now < self._next_log:
                return
            fresh, self._logged = self.count - self._logged, self.count
            self._next_log = now + self.interval
        log.warning(
            "saturated",
            None,
            "all %d connections to Redis at %s were busy: %d requests answered %s "
            "(%d in total); raise max_connections if this persists",
            self.bound,
            self.where,
            fresh,
            self.policy,
            self.count,
        )
