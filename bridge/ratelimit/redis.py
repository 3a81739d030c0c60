"""``RedisStore``: one limit shared by every worker on every machine (extra ``redis``).

Theory of operation
-------------------
* One round trip per check: an atomic Lua script, sent by SHA (``EVALSHA``;
  on ``NOSCRIPT`` redis-py loads it and retries once), decides every rate of
  the request on Redis's clock and returns all the header values.
* Clients: the sync client under WSGI; ``redis.asyncio`` under ASGI on
  asyncio (one client per running loop); on any other async library (trio)
  the sync client in a worker thread. No call ever blocks an event loop.
* Keys: ``<prefix>{<key>}:<rate>``. The braces are a Redis Cluster hash tag,
  so all keys of one check live in one slot; key functions' output is
  sanitised (no braces) before it gets here.
* Failures (connection refused, timeouts, a replica that became read-only):
  the store is marked down and answers by its failure policy without
  touching Redis until the next probe (backoff doubling from ``backoff[0]``
  to ``backoff[1]`` seconds); one warning when an outage starts and one
  line when it ends, never one per request. Script errors are bugs and raise.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import anyio.to_thread

from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._rates import Rate
from bridge.ratelimit._redis_health import Health
from bridge.ratelimit._redis_lua import ACQUIRE_SCRIPT, CHECK_SCRIPT
from bridge.ratelimit._store import Verdict

try:
    import redis
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "bridge.RedisStore needs redis-py: pip install 'wsgi-asgi-bridge[redis]'"
    ) from exc

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript, Script

__all__ = ("FailurePolicy", "RedisStore")

FailurePolicy = Literal["fail_open", "fail_closed", "local_fallback"]
_POLICIES: Final = ("fail_open", "fail_closed", "local_fallback")
#: What "Redis is unavailable" looks like from redis-py.
_OUTAGE: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
_T = TypeVar("_T")


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


class RedisStore:
    """Rate-limit and concurrency state in Redis, shared by processes and machines.

    :param url: ``redis://`` (or ``rediss://``, ``unix://``) URL of the server
        (default ``redis://localhost:6379/0``). Ignored when ``client`` is given.
    :param prefix: prepended to every key (default ``"bridge:rl:"``); must not
        contain ``{`` or ``}``.
    :param connect_timeout: seconds to wait for a connection (default 0.5).
    :param timeout: seconds to wait for a reply (default 0.25); a slower Redis
        counts as down.
    :param failure: what to do while Redis is unavailable -- ``"fail_open"``
        (default: admit requests, send no quota headers), ``"fail_closed"``
        (reject them with 503), or ``"local_fallback"`` (limit each process on
        its own with a :class:`~bridge.MemoryStore` until Redis is back).
    :param backoff: ``(first, most)`` seconds between probes of a down Redis
        (default ``(0.5, 30.0)``, doubling).
    :param lease: seconds after which a ConcurrencyLimit slot held by a dead
        worker is given back (default 300); requests running longer than
        this stop being counted.
    :param client: a ready ``redis.Redis`` to use instead of one built from
        ``url`` (under WSGI, on trio, and on asyncio in a worker thread unless
        ``async_client_factory`` is given); ``async_client_factory`` builds a
        ``redis.asyncio.Redis`` for each running asyncio loop.
    :param fallback: the store for ``"local_fallback"`` (default a new
        :class:`~bridge.MemoryStore`).

    .. versionadded:: 0.1
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
        client: redis.Redis | None = None,
        async_client_factory: Callable[[], redis.asyncio.Redis] | None = None,
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
        self.prefix = prefix
        self.failure = failure
        self.lease = lease
        self.fallback = fallback if fallback is not None else MemoryStore()
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
        }
        self._client = client if client is not None else self._sync_client(url, options)
        # A ready sync client without an async factory: its twin is unknown, so the
        # sync client serves asyncio too, in a worker thread (as on trio).
        self._async_factory: Callable[[], redis.asyncio.Redis] | None = async_client_factory
        if async_client_factory is None and client is None:
            self._async_factory = lambda: self._async_client(url, options)
        self._check_script: Script = self._client.register_script(CHECK_SCRIPT)
        self._acquire_script: Script = self._client.register_script(ACQUIRE_SCRIPT)
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncScript, AsyncScript]
        ] = weakref.WeakKeyDictionary()
        self._health = Health(backoff, failure, _describe(url, client))

    # One immediate retry on a connection error, none on a timeout: after a Redis
    # restart every pooled connection is stale and fails once, which is no outage;
    # a timeout already cost its full wait, and the failure policy decides then.

    @staticmethod
    def _sync_client(url: str, options: dict[str, Any]) -> redis.Redis:
        retry = redis.retry.Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        return redis.Redis.from_url(url, retry=retry, **options)

    @staticmethod
    def _async_client(url: str, options: dict[str, Any]) -> redis.asyncio.Redis:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        return redis.asyncio.Redis.from_url(url, retry=retry, **options)

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
        if self._health.may_try():
            with _Attempt(self._health) as attempt:
                keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
                reply = self._check_script(keys, args)
            if attempt.ok:
                return _split_reply(reply, len(rates))
        return self._degraded(key, rates, algorithm, cost, now)

    async def check_async(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        if self._health.may_try():
            keys, args = self.keys_for(key, rates), self._args(rates, algorithm, cost)
            with _Attempt(self._health) as attempt:
                reply = await self._run_async(
                    lambda scripts: scripts[1](keys, args, scripts[0]),
                    lambda: self._check_script(keys, args),
                )
            if attempt.ok:
                return _split_reply(reply, len(rates))
        return self._degraded(key, rates, algorithm, cost, now)

    async def _run_async(
        self,
        on_asyncio: Callable[[tuple[redis.asyncio.Redis, AsyncScript, AsyncScript]], Awaitable[_T]],
        in_thread: Callable[[], _T],
    ) -> _T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio (or another library): the sync client, off the loop
            loop = None
        if loop is None or self._async_factory is None:
            return await anyio.to_thread.run_sync(in_thread)
        return await on_asyncio(self._async_for(loop, self._async_factory))

    def _async_for(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], redis.asyncio.Redis]
    ) -> tuple[redis.asyncio.Redis, AsyncScript, AsyncScript]:
        entry = self._async.get(loop)
        if entry is None:
            client = factory()
            entry = (
                client,
                client.register_script(CHECK_SCRIPT),
                client.register_script(ACQUIRE_SCRIPT),
            )
            self._async[loop] = entry
        return entry

    # -- concurrency ---------------------------------------------------------------

    def _slot_key(self, key: str) -> str:
        return f"{self.prefix}{{{key}}}:in-flight"

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        """Take one of ``limit`` slots for ``key`` (a lease of :attr:`lease` seconds)."""
        if self._health.may_try():
            with _Attempt(self._health) as attempt:
                reply = self._acquire_script([self._slot_key(key)], [limit, token, self.lease])
            if attempt.ok:
                return bool(reply)
        return self._degraded_slot(key, limit, token, now)

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool:
        if self._health.may_try():
            keys = [self._slot_key(key)]
            args: list[int | str | float] = [limit, token, self.lease]
            with _Attempt(self._health) as attempt:
                reply = await self._run_async(
                    lambda scripts: scripts[2](keys, args, scripts[0]),
                    lambda: self._acquire_script(keys, args),
                )
            if attempt.ok:
                return bool(reply)
        return self._degraded_slot(key, limit, token, now)

    def release(self, key: str, token: str) -> None:
        """Give back ``token``'s slot; while Redis is down its lease runs out instead."""
        self.fallback.release(key, token)
        if self._health.down_since is None:
            try:
                self._client.zrem(self._slot_key(key), token)
            except _OUTAGE as exc:
                self._health.failed(exc)

    async def release_async(self, key: str, token: str) -> None:
        self.fallback.release(key, token)
        if self._health.down_since is None:
            slot_key = self._slot_key(key)
            try:
                await self._run_async(
                    lambda scripts: scripts[0].zrem(slot_key, token),
                    lambda: self._client.zrem(slot_key, token),
                )
            except _OUTAGE as exc:
                self._health.failed(exc)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store considers Redis down."""
        return self._health.down_since is None

    def close(self) -> None:
        """Close the sync client's connections."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the connections of the current asyncio loop's client (and the sync client)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = self._async.pop(loop) if loop is not None and loop in self._async else None
        if entry is not None:
            await entry[0].aclose()
        self.close()


def _describe(url: str, client: redis.Redis | None) -> str:
    if client is None:
        return url.rpartition("@")[2]  # never log a password
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
