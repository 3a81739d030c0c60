"""Rate limiting that is correct across workers and machines.

Public names: :class:`Rate`, :func:`parse_rates`, the stores
(:class:`MemoryStore`, and ``RedisStore`` from :mod:`bridge.ratelimit.redis`),
the key functions, and the middleware ``RateLimit`` / ``ConcurrencyLimit``.
"""

from __future__ import annotations

from ._algorithms import Outcome
from ._keys import client_address, client_address_key, header_key, method_key, path_key
from ._memory import MemoryStore
from ._rates import Rate, parse_rates
from ._store import Store, Verdict

__all__ = (
    "MemoryStore",
    "Outcome",
    "Rate",
    "Store",
    "Verdict",
    "client_address",
    "client_address_key",
    "header_key",
    "method_key",
    "parse_rates",
    "path_key",
)
