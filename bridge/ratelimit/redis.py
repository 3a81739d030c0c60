"""``RedisStore``: one limit shared by every worker on every machine (extra ``redis``).

Theory of operation
-------------------
* One round trip per check: an atomic Lua script, sent by SHA (``EVALSHA``),
  decides every rate of the request on Redis's clock and returns all the
  header values. On ``NOSCRIPT`` (a Redis that restarted, was flushed or
  failed over) the store loads the script, drops its idle connections (they
  were made to the server that was there before) and retries once.
* Where Redis is: one server, a Redis Cluster or a Sentinel-managed master
  (``_redis_clients``). Keys: ``<prefix>{<key>}:<rate>``; the braces are a
  Cluster hash tag, so all keys of one check live in one slot; key functions'
  output is sanitised (no braces) before it gets here.
* Clients: the sync client under WSGI; ``redis.asyncio`` under ASGI on
  asyncio (one client per running loop); on any other async library (trio)
  the sync client in a worker thread. No call ever blocks an event loop.
* Connections: at most ``max_connections`` commands run at once per client
  (a semaphore), so its pool never holds more connections than that. A
  request that waits ``timeout`` for a free one is answered by the failure
  policy, without marking Redis down (it is this process that is busy).
* Failures (connection refused, timeouts, a replica that became read-only,
  a cluster slot without a master): the store is marked down, drops its idle
  connections, and answers by its failure policy without touching Redis until
  the next probe (backoff doubling from ``backoff[0]`` to ``backoff[1]``
  seconds); one warning when an outage starts and one line when it ends,
  never one per request. Script errors are bugs and raise.
* Charging after the response (``count_when``, ``response_cost``): the check
  is the reservation (its reply carries Redis's clock), and the settle is one
  more script, one round trip, only when the charge differs from what was
  reserved. A reservation made by the local fallback is settled there; one
  made by Redis while Redis is down now is lost (the outage is logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypeVar

import anyio.to_thread

from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._rates import Rate
from bridge.ratelimit._redis_health import Health, Saturation
from bridge.ratelimit._redis_lua import ACQUIRE_SCRIPT, CHARGE_SCRIPT, CHECK_SCRIPT
from bridge.ratelimit._store import Reservation, Verdict

try:
    from redis.exceptions import ClusterError, NoScriptError, ReadOnlyError, RedisClusterException
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from bridge.ratelimit._redis_clients import (
        AsyncClient,
        SyncClient,
        Target,
        aclose,
        async_client,
        close,
        drop_idle,
        drop_idle_async,
        parse_target,
        sync_client,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "bridge.RedisStore needs redis-py: pip install 'wsgi-asgi-bridge[redis]'"
    ) from exc

__all__ = ("FailurePolicy", "RedisStore")

FailurePolicy = Literal["fail_open", "fail_closed", "local_fallback"]
_POLICIES: Final = ("fail_open", "fail_closed", "local_fallback")
#: What "Redis is unavailable" looks like from redis-py (a cluster that lost a master
#: for a slot raises ClusterDownError, one whose nodes are unreachable a cluster exception).
_OUTAGE: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    ClusterError,
    RedisClusterException,
    OSError,
)
_DEFAULT_MAX_CONNECTIONS: Final = 16
_T = TypeVar("_T")


class _Missing:
    """No answer from Redis: the caller applies the failure policy."""


_MISSING: Final = _Missing()


class _Script:
    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


_CHECK: Final = _Script(CHECK_SCRIPT)
_ACQUIRE: Final = _Script(ACQUIRE_SCRIPT)
_CHARGE: Final = _Script(CHARGE_SCRIPT)


def _split_reply(reply: Sequence[Any], count: int) -> Verdict:
    outcomes = []
    for i in range(count):
        base = 1 + 4 * i
        outcomes.append(
            RateOutcome(
                bool(int(reply[base])),
                None,
                int(reply[base + 1]),
                int(reply[base + 2]) / 1e6,
                int(reply[base + 3]) / 1e6,
                0.0,
            )
        )
    return Verdict(bool(int(reply[0])), tuple(outcomes))


def _reservation(reply: Sequence[Any], count: int, cost: int) -> Reservation:
    """A check's reply as a reservation: its last item is Redis's clock, in ``%.17g``."""
    return Reservation(_split_reply(reply, count), cost, float(reply[-1]))


def _charge_reply(reply: Sequence[Any], count: int) -> tuple[RateOutcome, ...]:
    return tuple(
        RateOutcome(True, None, int(reply[2 * i]), int(reply[2 * i + 1]) / 1e6, 0.0, 0.0)
        for i in range(count)
    )


class _Attempt:
    """One guarded Redis call: its outcome goes into the store's health record.

    An outage error is swallowed (``ok`` stays False, the caller degrades); any
    other exception, a bug or a cancellation, hands probing back and propagates,
    so recovery is never stuck on a caller that went away.
    """

    __slots__ = ("_health", "ok")

    def __init__(self, health: Health) -> None:
        self._health = health
        self.ok = False

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        if exc is None:
            self._health.succeeded()
            self.ok = True
            return False
        if isinstance(exc, _OUTAGE):
            self._health.failed(exc)
            return True
        self._health.abandon()
        return False


class _LoopClient:
    """The asyncio client of one running loop, with its own bound on commands in flight."""

    __slots__ = ("client", "slots")

    def __init__(self, client: AsyncClient, max_connections: int) -> None:
        self.client = client
        self.slots = asyncio.Semaphore(max_connections)


async def _take(slots: asyncio.Semaphore, patience: float) -> bool:
    if not slots.locked():
        await slots.acquire()  # returns at once
        return True
    try:
        async with asyncio.timeout(patience):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


class RedisStore:
    """Rate-limit and concurrency state in Redis, shared by processes and machines.

    :param url: where Redis is (default ``redis://localhost:6379/0``): a server
        (``redis://``, ``rediss://``, ``unix://``), a Redis Cluster
        (``redis+cluster://host:port[,host:port...]/``, any of its nodes) or a
        master managed by Sentinel
        (``redis+sentinel://host:port[,host:port...]/service[/db]``, the
        sentinels). Ignored when ``client`` is given.
    :param prefix: prepended to every key (default ``"bridge:rl:"``); must not
        contain ``{`` or ``}``.
    :param connect_timeout: seconds to wait for a connection (default 0.5).
    :param timeout: seconds to wait for a reply (default 0.25); a slower Redis
        counts as down. Also the longest a request waits for a free connection.
    :param failure: what to do while Redis is unavailable -- ``"fail_open"``
        (default: admit requests, send no quota headers), ``"fail_closed"``
        (reject them with 503), or ``"local_fallback"`` (limit each process on
        its own with a :class:`~bridge.MemoryStore` until Redis is back).
    :param backoff: ``(first, most)`` seconds between probes of a down Redis
        (default ``(0.5, 30.0)``, doubling).
    :param lease: seconds after which a ConcurrencyLimit slot held by a dead
        worker is given back (default 300); requests running longer than
        this stop being counted.
    :param max_connections: the most connections the store opens per client
        (default 16; one client for WSGI and trio, one per asyncio loop; per
        node of a cluster). A request that finds them all busy for ``timeout``
        seconds is answered by ``failure`` and counted in :attr:`saturated`.
    :param client: a ready ``redis.Redis`` or ``redis.cluster.RedisCluster`` to
        use instead of one built from ``url`` (under WSGI, on trio, and on
        asyncio in a worker thread unless ``async_client_factory`` is given);
        ``async_client_factory`` builds a ``redis.asyncio`` client for each
        running asyncio loop. Their pools are theirs to bound.
    :param fallback: the store for ``"local_fallback"`` (default a new
        :class:`~bridge.MemoryStore`).

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
       ``redis+cluster://`` and ``redis+sentinel://`` URLs; ``max_connections``.
    """

    local = False

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "bridge:rl:",
        connect_timeout: float = 0.5,
        timeout: float = 0.25,
        failure: FailurePolicy = "fail_open",
        backoff: tuple[float, float] = (0.5, 30.0),
        lease: float = 300.0,
        max_connections: int = _DEFAULT_MAX_CONNECTIONS,
        client: SyncClient | None = None,
        async_client_factory: Callable[[], AsyncClient] | None = None,
        fallback: MemoryStore | None = None,
    ) -> None:
        if failure not in _POLICIES:
            raise ValueError(f"failure must be one of {', '.join(_POLICIES)}, not {failure!r}")
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix {prefix!r} must not contain braces (Redis hash tags)")
        if not (connect_timeout > 0 and timeout > 0 and 0 < backoff[0] <= backoff[1]):
            raise ValueError("timeouts and backoff must be positive, backoff as (first, most)")
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, not {max_connections!r}")
        self.prefix = prefix
        self.failure = failure
        self.lease = lease
        self.timeout = timeout
        self.max_connections = max_connections
        self.fallback = fallback if fallback is not None else MemoryStore()
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
        }
        # The sync client is built on first use: a cluster client connects as it is made,
        # and a store made while Redis is down must still answer by its failure policy.
        self._client: SyncClient | None = client
        self._build_lock = threading.Lock()
        # A ready sync client without an async factory: its twin is unknown, so the
        # sync client serves asyncio too, in a worker thread (as on trio).
        self._async_factory = async_client_factory
        if client is not None:
            self._build = _ready(client)
            where = _describe(client)
        else:
            target = parse_target(url)
            self._build = _builder(sync_client, target, options, max_connections)
            if async_client_factory is None:
                self._async_factory = _builder(async_client, target, options, max_connections)
            where = target.describe()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._health = Health(backoff, failure, where)
        self._saturation = Saturation(where, max_connections, failure)

    @property
    def saturated(self) -> int:
        """Requests answered by the failure policy because every connection was busy."""
        return self._saturation.count

    # -- keys -------------------------------------------------------------------

    def keys_for(self, key: str, rates: Sequence[Rate]) -> list[str]:
        """The Redis keys of one check (one per rate, one hash slot)."""
        tagged = f"{self.prefix}{{{key}}}:"
        return [tagged + rate.name for rate in rates]

    @staticmethod
    def _args(rates: Sequence[Rate], algorithm: str, cost: int, now: str = "") -> list[Any]:
        args: list[Any] = [algorithm, cost, now]
        for rate in rates:
            args += [rate.count, rate.period, rate.burst]
        return args

    def _slot_key(self, key: str) -> str:
        return f"{self.prefix}{{{key}}}:in-flight"

    # -- scripts ------------------------------------------------------------------

    @staticmethod
    def _eval(client: SyncClient, script: _Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A Redis without our scripts restarted, was flushed or failed over: the idle
            # connections were made to the server that was there before.
            drop_idle(client)
            client.script_load(script.text)
            return client.evalsha(script.sha, len(keys), *keys, *args)

    @staticmethod
    async def _eval_async(
        client: AsyncClient, script: _Script, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await drop_idle_async(client)
            await client.script_load(script.text)
            return await client.evalsha(script.sha, len(keys), *keys, *args)

    def _check_script(self, keys: list[str], args: list[Any]) -> Any:
        """One run of the check script on the sync client, unguarded (tests use it too)."""
        return self._eval(self._sync_client(), _CHECK, keys, args)

    def _sync_client(self) -> SyncClient:
        client = self._client
        if client is None:
            with self._build_lock:
                client = self._client
                if client is None:
                    client = self._client = self._build()
        return client

    # -- guarded calls ----------------------------------------------------------------

    def _run(self, call: Callable[[SyncClient], _T]) -> _T | _Missing:
        """``call(client)`` within a connection slot; ``_MISSING`` when it got no answer."""
        if not self._slots.acquire(timeout=self.timeout):
            self._saturation.note()
            return _MISSING
        try:
            if not self._health.may_try():
                return _MISSING
            with _Attempt(self._health) as attempt:
                result = call(self._sync_client())
            if attempt.ok:
                return result
            if self._client is not None:
                drop_idle(self._client)  # whatever they were connected to failed
            return _MISSING
        finally:
            self._slots.release()

    async def _run_async(
        self,
        on_loop: Callable[[AsyncClient], Awaitable[_T]],
        in_thread: Callable[[SyncClient], _T],
    ) -> _T | _Missing:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio (or another library): the sync client, off the loop
            loop = None
        if loop is None or self._async_factory is None:
            return await anyio.to_thread.run_sync(self._run, in_thread)
        entry = self._loop_client(loop, self._async_factory)
        if not await _take(entry.slots, self.timeout):
            self._saturation.note()
            return _MISSING
        try:
            if not self._health.may_try():
                return _MISSING
            with _Attempt(self._health) as attempt:
                result = await on_loop(entry.client)
            if attempt.ok:
                return result
            await drop_idle_async(entry.client)
            return _MISSING
        finally:
            entry.slots.release()

    def _loop_client(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], AsyncClient]
    ) -> _LoopClient:
        entry = self._async.get(loop)
        if entry is None:
            entry = self._async[loop] = _LoopClient(factory(), self.max_connections)
        return entry

    # -- failure policy --------------------------------------------------------

    def _degraded(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        if self.failure == "local_fallback":
            return self.fallback.check(key, rates, algorithm, cost, now)
        return Verdict(self.failure == "fail_open", (), unavailable=True)

    def _degraded_slot(self, key: str, limit: int, token: str, now: float) -> bool:
        if self.failure == "local_fallback":
            return self.fallback.acquire(key, limit, token, now)
        return self.failure == "fail_open"

    # -- checks ------------------------------------------------------------------

    def check(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        """Decide one request in one round trip (see :class:`~bridge.ratelimit.Store`)."""
        keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
        reply = self._run(lambda client: self._eval(client, _CHECK, keys, args))
        if isinstance(reply, _Missing):
            return self._degraded(key, rates, algorithm, cost, now)
        return _split_reply(reply, len(rates))

    async def check_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
        reply = await self._run_async(
            lambda client: self._eval_async(client, _CHECK, keys, args),
            lambda client: self._eval(client, _CHECK, keys, args),
        )
        if isinstance(reply, _Missing):
            return self._degraded(key, rates, algorithm, cost, now)
        return _split_reply(reply, len(rates))

    # -- charging after the response ------------------------------------------------

    def reserve(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation:
        """:meth:`check`, remembering Redis's clock (a :class:`~bridge.ratelimit.Reservation`)."""
        keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
        reply = self._run(lambda client: self._eval(client, _CHECK, keys, args))
        if isinstance(reply, _Missing):
            return self._degraded_reservation(key, rates, algorithm, cost, now)
        return _reservation(reply, len(rates), cost)

    async def reserve_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation:
        keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
        reply = await self._run_async(
            lambda client: self._eval_async(client, _CHECK, keys, args),
            lambda client: self._eval(client, _CHECK, keys, args),
        )
        if isinstance(reply, _Missing):
            return self._degraded_reservation(key, rates, algorithm, cost, now)
        return _reservation(reply, len(rates), cost)

    def _degraded_reservation(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Reservation:
        if self.failure == "local_fallback":
            return self.fallback.reserve(key, rates, algorithm, cost, now)._replace(fallback=True)
        return Reservation(self._degraded(key, rates, algorithm, cost, now), cost, now)

    @staticmethod
    def _charge_args(
        rates: Sequence[Rate], algorithm: str, reservation: Reservation, charge: int, now: str = ""
    ) -> list[Any]:
        args: list[Any] = [algorithm, charge - reservation.cost, repr(reservation.at), now]
        for rate in rates:
            args += [rate.count, rate.period, rate.burst]
        return args

    def settle(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None:
        """Charge ``charge`` units for a request that reserved ``reservation.cost`` (one script)."""
        if charge == reservation.cost:
            return None
        if reservation.fallback:
            return self.fallback.settle(key, rates, algorithm, reservation, charge, now)
        keys = self.keys_for(key, rates)
        args = self._charge_args(rates, algorithm, reservation, charge)
        reply = self._run(lambda client: self._eval(client, _CHARGE, keys, args))
        return None if isinstance(reply, _Missing) else _charge_reply(reply, len(rates))

    async def settle_async(
        self,
        key: str,
        rates: Sequence[Rate],
        algorithm: str,
        reservation: Reservation,
        charge: int,
        now: float,
    ) -> tuple[RateOutcome, ...] | None:
        if charge == reservation.cost or reservation.fallback:  # no round trip: settle's own
            return self.settle(key, rates, algorithm, reservation, charge, now)
        keys = self.keys_for(key, rates)
        args = self._charge_args(rates, algorithm, reservation, charge)
        reply = await self._run_async(
            lambda client: self._eval_async(client, _CHARGE, keys, args),
            lambda client: self._eval(client, _CHARGE, keys, args),
        )
        return None if isinstance(reply, _Missing) else _charge_reply(reply, len(rates))

    # -- concurrency ---------------------------------------------------------------

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        """Take one of ``limit`` slots for ``key`` (a lease of :attr:`lease` seconds)."""
        keys, args = [self._slot_key(key)], [limit, token, self.lease]
        reply = self._run(lambda client: self._eval(client, _ACQUIRE, keys, args))
        if isinstance(reply, _Missing):
            return self._degraded_slot(key, limit, token, now)
        return bool(reply)

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool:
        keys, args = [self._slot_key(key)], [limit, token, self.lease]
        reply = await self._run_async(
            lambda client: self._eval_async(client, _ACQUIRE, keys, args),
            lambda client: self._eval(client, _ACQUIRE, keys, args),
        )
        if isinstance(reply, _Missing):
            return self._degraded_slot(key, limit, token, now)
        return bool(reply)

    def release(self, key: str, token: str) -> None:
        """Give back ``token``'s slot; while Redis is down its lease runs out instead."""
        self.fallback.release(key, token)
        if self.available:
            slot_key = self._slot_key(key)
            self._run(lambda client: client.zrem(slot_key, token))

    async def release_async(self, key: str, token: str) -> None:
        self.fallback.release(key, token)
        if self.available:
            slot_key = self._slot_key(key)

            async def zrem(client: AsyncClient) -> object:
                return await client.zrem(slot_key, token)

            await self._run_async(zrem, lambda client: client.zrem(slot_key, token))

    # -- lifecycle -------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store considers Redis down."""
        return self._health.down_since is None

    def close(self) -> None:
        """Close the sync client's connections."""
        if self._client is not None:
            close(self._client)

    async def aclose(self) -> None:
        """Close the connections of the current asyncio loop's client (and the sync client)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = self._async.pop(loop) if loop is not None and loop in self._async else None
        if entry is not None:
            await aclose(entry.client)
        self.close()


def _ready(client: SyncClient) -> Callable[[], SyncClient]:
    return lambda: client


def _builder(
    build: Callable[[Target, dict[str, Any], int], _T],
    target: Target,
    options: dict[str, Any],
    max_connections: int,
) -> Callable[[], _T]:
    return lambda: build(target, options, max_connections)


def _describe(client: SyncClient) -> str:
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return type(client).__name__
    kwargs = pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
