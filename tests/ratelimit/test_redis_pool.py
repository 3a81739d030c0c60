"""RedisStore's connections: bounded under a burst, never left half-closed by a restart."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import anyio
import psutil
import pytest

from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit._store import Verdict
from bridge.ratelimit.redis import RedisStore

from .redis_process import RedisProcess, own_redis
from .redis_topologies import wait_for

__all__ = ("own_redis",)

pytestmark = pytest.mark.redis
RATES = parse_rates("1000000/minute")
BURST = 100


def connections_to(port: int, status: str | None = None) -> int:
    """This process's TCP connections to ``port`` (in ``status``, if given)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and (status is None or c.status == status)
    )


def burst(store: RedisStore, size: int = BURST) -> list[Verdict]:
    """``size`` checks released at the same instant from ``size`` threads."""
    start = threading.Barrier(size)

    def one(i: int) -> Verdict:
        start.wait()
        return store.check(f"client-{i % 7}", RATES, "gcra", 1, 0.0)

    with ThreadPoolExecutor(size) as pool:
        return list(pool.map(one, range(size)))


@pytest.mark.parametrize("bound", [16, 4])
def test_a_burst_opens_at_most_the_bound(own_redis: RedisProcess, bound: int) -> None:
    store = RedisStore(own_redis.url, prefix=f"b:{uuid.uuid4().hex}:", max_connections=bound)
    try:
        verdicts = burst(store)
        assert len(verdicts) == BURST
        assert all(v.allowed and v.outcomes for v in verdicts)  # queued, not refused
        # Connections are kept for reuse, so what is open now is the most ever opened.
        assert 1 <= connections_to(own_redis.port, psutil.CONN_ESTABLISHED) <= bound
    finally:
        store.close()
    assert connections_to(own_redis.port, psutil.CONN_ESTABLISHED) == 0


@pytest.mark.parametrize(
    ("failure", "allowed"), [("fail_closed", False), ("fail_open", True)], ids=["closed", "open"]
)
def test_a_burst_beyond_the_bound_answers_by_the_failure_policy(
    own_redis: RedisProcess, failure: str, allowed: bool
) -> None:
    """Requests that find every connection busy for ``timeout`` get the failure policy's
    answer at once, and Redis is not marked down for it."""
    store = RedisStore(
        own_redis.url,
        prefix=f"s:{uuid.uuid4().hex}:",
        max_connections=2,
        timeout=0.05,
        failure=failure,  # type: ignore[arg-type]
    )
    try:
        assert store.check("k", RATES, "gcra", 1, 0.0).outcomes
        for _ in range(2):  # two long requests hold both connections
            assert store._slots.acquire(timeout=1)
        try:
            verdicts = burst(store, 20)
        finally:
            store._slots.release()
            store._slots.release()
        assert all(v.unavailable and v.allowed is allowed for v in verdicts)
        assert store.saturated == 20
        assert store.available
        assert store.check("k", RATES, "gcra", 1, 0.0).outcomes  # served again at once
    finally:
        store.close()


@pytest.mark.anyio
async def test_an_async_burst_opens_at_most_the_bound(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url, prefix=f"ab:{uuid.uuid4().hex}:", max_connections=4)
    results: list[Verdict] = []

    async def one(i: int) -> None:
        results.append(await store.check_async(f"client-{i % 7}", RATES, "gcra", 1, 0.0))

    try:
        async with anyio.create_task_group() as group:
            for i in range(BURST):
                group.start_soon(one, i)
        assert len(results) == BURST
        assert all(v.allowed and v.outcomes for v in results)
        assert 1 <= connections_to(own_redis.port, psutil.CONN_ESTABLISHED) <= 4
    finally:
        await store.aclose()


def test_no_half_closed_connections_after_a_restart(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url, prefix=f"r:{uuid.uuid4().hex}:", max_connections=16)
    try:
        burst(store)
        opened = connections_to(own_redis.port, psutil.CONN_ESTABLISHED)
        assert opened > 1
        own_redis.stop()
        own_redis.start()  # same port; every pooled connection is now half-closed
        wait_for(
            lambda: connections_to(own_redis.port, psutil.CONN_CLOSE_WAIT) == opened,
            "the old server's FINs",
        )
        verdict = store.check("after", RATES, "gcra", 1, 0.0)
        assert verdict.allowed  # no outage: one reconnect, one script load
        assert verdict.outcomes
        assert store.available
        assert connections_to(own_redis.port, psutil.CONN_CLOSE_WAIT) == 0
        assert connections_to(own_redis.port, psutil.CONN_ESTABLISHED) == 1
    finally:
        store.close()


def test_no_half_closed_connections_after_an_outage(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url, prefix=f"o:{uuid.uuid4().hex}:", backoff=(0.01, 0.01))
    try:
        burst(store)
        own_redis.stop()
        assert store.check("k", RATES, "gcra", 1, 0.0).unavailable
        # Dropped with the outage: none left half-closed, none still open.
        assert connections_to(own_redis.port, psutil.CONN_CLOSE_WAIT) == 0
        assert connections_to(own_redis.port, psutil.CONN_ESTABLISHED) == 0
        own_redis.start()
        for _ in range(1000):  # the next probe comes after 10 ms
            if store.check("k", RATES, "gcra", 1, 0.0).outcomes:
                break
            time.sleep(0.005)
        assert store.available
        assert connections_to(own_redis.port, psutil.CONN_CLOSE_WAIT) == 0
    finally:
        store.close()
