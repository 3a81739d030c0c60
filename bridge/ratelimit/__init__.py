"""Rate limiting that is correct across workers and machines.

Public names: :class:`Rate`, :func:`parse_rates`, the stores
(:class:`MemoryStore`, and ``RedisStore`` from :mod:`bridge.ratelimit.redis`),
the key functions, and the middleware ``RateLimit`` / ``ConcurrencyLimit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._algorithms import RateOutcome
from ._concurrency import ConcurrencyLimit
from ._headers import PROBLEM_TYPE
from ._keys import client_address, client_address_key, header_key, method_key, path_key
from ._memory import MemoryStore
from ._middleware import RateLimit
from ._rates import Rate, parse_rates
from ._rules import Rule
from ._store import Store, Verdict

if TYPE_CHECKING:  # RedisStore needs the "redis" extra: imported on first use
    from .redis import RedisStore

__all__ = (
    "PROBLEM_TYPE",
    "ConcurrencyLimit",
    "MemoryStore",
    "Rate",
    "RateLimit",
    "RateOutcome",
    "RedisStore",
    "Rule",
    "Store",
    "Verdict",
    "client_address",
    "client_address_key",
    "header_key",
    "method_key",
    "parse_rates",
    "path_key",
)


def __getattr__(name: str) -> object:
    # RedisStore needs the optional redis-py (extra "redis"): imported on first use.
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
