"""Rate limiting that is correct across workers and machines.

Public names: :class:`Rate`, :func:`parse_rates`, the stores
(:class:`MemoryStore`, and ``RedisStore`` from :mod:`bridge.ratelimit.redis`),
the key functions, the middleware ``RateLimit`` / ``ConcurrencyLimit``, and
:func:`limit`, a limit declared next to the route (a view decorator and a
FastAPI dependency) with its identity keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._charge import ResponseCost, response_cost
from bridge.ratelimit._concurrency import ConcurrencyLimit
from bridge.ratelimit._decision import DECISION_KEY, LimitDecision
from bridge.ratelimit._headers import PROBLEM_TYPE
from bridge.ratelimit._identity import environ_key, state_key, user_key
from bridge.ratelimit._keys import (
    client_address,
    client_address_key,
    header_key,
    method_key,
    path_key,
)
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._middleware import RateLimit
from bridge.ratelimit._rates import Rate, parse_rates
from bridge.ratelimit._route import RouteLimit, RouteRequest, limit
from bridge.ratelimit._route_link import ROUTE_KEY
from bridge.ratelimit._rules import Rule
from bridge.ratelimit._store import ChargingStore, Reservation, Store, Verdict

if TYPE_CHECKING:  # RedisStore needs the "redis" extra: imported on first use
    from bridge.ratelimit.redis import RedisStore

__all__ = (
    "DECISION_KEY",
    "PROBLEM_TYPE",
    "ROUTE_KEY",
    "ChargingStore",
    "ConcurrencyLimit",
    "LimitDecision",
    "MemoryStore",
    "Rate",
    "RateLimit",
    "RateOutcome",
    "RedisStore",
    "Reservation",
    "ResponseCost",
    "RouteLimit",
    "RouteRequest",
    "Rule",
    "Store",
    "Verdict",
    "client_address",
    "client_address_key",
    "environ_key",
    "header_key",
    "limit",
    "method_key",
    "parse_rates",
    "path_key",
    "response_cost",
    "state_key",
    "user_key",
)


def __getattr__(name: str) -> object:
    # RedisStore needs the optional redis-py (extra "redis"): imported on first use.
    if name == "RedisStore":
        from bridge.ratelimit.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
