"""The store interface: what a backend (memory, Redis, memcached, valkey...) implements.

A store answers two questions atomically for one key:

* ``check(key, rates, algorithm, cost, now)``: does this request fit every
  rate? All rates are decided together; when one denies, none is consumed.
  Returns a :class:`Verdict` with one :class:`~bridge.ratelimit.RateOutcome` per
  rate, in order, which is everything the response headers need.
* ``acquire(key, limit, token, now)`` / ``release(key, token)``: a slot among
  ``limit`` requests in flight for ``key`` (ConcurrencyLimit).

Each has an ``async`` twin (``check_async``...), awaited by the ASGI driver on
any backend (asyncio or trio); the sync methods are called by the WSGI
driver. A store whose methods never do I/O sets ``local = True`` and the
middleware calls its sync methods inline under both interfaces.

``now`` is the middleware's clock; a shared store uses its own server's
clock instead, so that machines with skewed clocks agree.

A store that can charge a request once its response is known (the
``count_when`` and ``response_cost`` options) also implements
:class:`ChargingStore`: ``reserve`` is ``check`` that remembers what it
held, and ``settle`` moves the key's state by the difference between the
final charge and the reservation, atomically, in one call.

A backend must keep a denied request from consuming quota, use the algorithm
functions' semantics (``bridge.ratelimit._algorithms``), and bound the
lifetime of its keys (expire them once their state means nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from bridge.middleware import Effect, RequestBodyIO
from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._rates import Rate

__all__ = ("ChargingStore", "Reservation", "Store", "StoreCall", "Verdict")

T = TypeVar("T")

#: The arguments of ``Store.check`` / ``check_async``: key, rates, algorithm, cost, now.
CheckArgs = tuple[str, Sequence[Rate], str, int, float]


class Verdict(NamedTuple):
    """A store's answer for one request.

    ``allowed``: admit the request. ``outcomes``: one per rate (empty when
    ``unavailable``). ``unavailable``: the store could not decide (a shared
    store is down and its failure policy is ``fail_open`` or ``fail_closed``);
    ``allowed`` then carries the policy's answer and no quota headers are sent.
    """

    allowed: bool
    outcomes: tuple[RateOutcome, ...]
    unavailable: bool = False


@runtime_checkable
class Store(Protocol):
    """What :class:`~bridge.RateLimit` and :class:`~bridge.ConcurrencyLimit` need from a store."""

    local: bool

    def check(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict: ...

    async def check_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict: ...

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool: ...

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool: ...

    def release(self, key: str, token: str) -> None: ...

    async def release_async(self, key: str, token: str) -> None: ...


class Reservation(NamedTuple):
    """What an admitted request holds until its charge is known.

    ``verdict``: the check's answer. ``cost``: the units it consumed (held).
    ``at``: the store's clock at the check (a window algorithm gives back to
    the window the reservation was made in). ``fallback``: a RedisStore's
    local fallback made it while Redis was down (and settles it).
    """

    verdict: Verdict
    cost: int
    at: float
    fallback: bool = False


@runtime_checkable
class ChargingStore(Store, Protocol):
    """A :class:`Store` that charges a request once its response is known.

    ``settle`` applies ``charge - reservation.cost`` units to every rate
    (more: added even past the quota; fewer: given back) and returns the
    rates' outcomes after it, or None when nothing changed or the store could
    not be reached.
    """

    def reserve(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation: ...

    async def reserve_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation: ...

    def settle(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None: ...

    async def settle_async(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None: ...


class StoreCall(Effect[T], Generic[T]):
    """One call of a shared store: its sync method under WSGI, its async twin under ASGI.

    ``StoreCall(store.check, store.check_async, args)``: the two methods take the same
    arguments (the store interface above pairs every method with its ``async`` twin).
    """

    __slots__ = ("args", "call", "call_async")

    def __init__(
        self,
        call: Callable[..., T],
        call_async: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
    ) -> None:
        self.call = call
        self.call_async = call_async
        self.args = args

    def run_sync(self, body: RequestBodyIO) -> T:
        return self.call(*self.args)

    async def run_async(self, body: RequestBodyIO) -> T:
        return await self.call_async(*self.args)
