"""RedisStore on a real 3-master Redis Cluster and behind a real Sentinel, failover included."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit._redis_clients import parse_target
from bridge.ratelimit._store import Verdict
from bridge.ratelimit.redis import RedisStore
from tests.conftest import free_port

from .redis_topologies import (
    SETTLE,
    Cluster,
    Sentinel,
    own_sentinel,
    redis_cluster,
    redis_sentinel,
    wait_for,
)

__all__ = ("own_sentinel", "redis_cluster", "redis_sentinel")

pytestmark = pytest.mark.redis
RATES = parse_rates("3/minute;10/hour")


def admitted(store: RedisStore, key: str, n: int) -> list[bool]:
    return [store.check(key, RATES, "gcra", 1, 0.0).allowed for _ in range(n)]


def test_cluster_shares_limits_across_slots(redis_cluster: Cluster) -> None:
    prefix = f"cl:{uuid.uuid4().hex}:"
    first, second = (
        RedisStore(redis_cluster.url, prefix=prefix),
        RedisStore(redis_cluster.url, prefix=prefix),
    )
    try:
        # Keys on every master: each client's keys live in one slot, on its own node.
        clients = [f"203.0.113.{i}" for i in range(12)]
        owners = {redis_cluster.node_for(first.keys_for(c, RATES)[0]).port for c in clients}
        assert len(owners) == 3
        for client in clients:
            decisions = [
                (first if i % 2 else second).check(client, RATES, "gcra", 1, 0.0) for i in range(4)
            ]
            assert [d.allowed for d in decisions] == [True, True, True, False]
            assert [o.remaining for o in decisions[2].outcomes] == [0, 7]
        assert first.acquire("c", 1, "a", 0.0)
        assert not second.acquire("c", 1, "b", 0.0)
        first.release("c", "a")
        assert second.acquire("c", 1, "b", 0.0)
    finally:
        first.close()
        second.close()


@pytest.mark.anyio
async def test_cluster_async(redis_cluster: Cluster) -> None:
    store = RedisStore(redis_cluster.url, prefix=f"cla:{uuid.uuid4().hex}:")
    try:
        results = [(await store.check_async("k", RATES, "gcra", 1, 0.0)).allowed for _ in range(4)]
        assert results == [True, True, True, False]
        assert await store.acquire_async("c", 1, "t1", 0.0)
        assert not await store.acquire_async("c", 1, "t2", 0.0)
        await store.release_async("c", "t1")
        assert await store.acquire_async("c", 1, "t2", 0.0)
    finally:
        await store.aclose()


def test_cluster_node_down_keeps_fail_mode_then_recovers(redis_cluster: Cluster) -> None:
    store = RedisStore(
        redis_cluster.url,
        prefix=f"cld:{uuid.uuid4().hex}:",
        failure="fail_closed",
        backoff=(0.05, 0.2),
        connect_timeout=0.2,
    )
    key = "198.51.100.7"
    node = redis_cluster.node_for(store.keys_for(key, RATES)[0])
    try:
        assert admitted(store, key, 1) == [True]
        node.stop()
        verdict = store.check(key, RATES, "gcra", 1, 0.0)
        assert (verdict.allowed, verdict.unavailable) == (False, True)
        assert not store.available
        node.start()  # same port, same nodes.conf: it takes its slots back
        deadline = time.monotonic() + SETTLE
        while not store.check(key, RATES, "gcra", 0, 0.0).outcomes:
            assert time.monotonic() < deadline, "the store never recovered"
            time.sleep(0.05)
        assert store.available
    finally:
        if node.proc is None:
            node.start()
        wait_for(redis_cluster.healthy, "the cluster's recovery")  # for the next test
        store.close()


def test_sentinel_finds_the_master(redis_sentinel: Sentinel) -> None:
    store = RedisStore(redis_sentinel.url, prefix=f"se:{uuid.uuid4().hex}:")
    try:
        assert admitted(store, "k", 4) == [True, True, True, False]
        keys = store.keys_for("k", RATES)
        assert store._sync_client().pttl(keys[0]) > 0  # written on the master the sentinel named
        assert redis_sentinel.master_port() == redis_sentinel.master.port
    finally:
        store.close()


@pytest.mark.anyio
async def test_sentinel_async(redis_sentinel: Sentinel) -> None:
    store = RedisStore(redis_sentinel.url, prefix=f"sea:{uuid.uuid4().hex}:")
    try:
        results = [(await store.check_async("k", RATES, "gcra", 1, 0.0)).allowed for _ in range(4)]
        assert results == [True, True, True, False]
    finally:
        await store.aclose()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("failure", ["fail_closed", "fail_open"])
def test_sentinel_failover_mid_load(own_sentinel: Sentinel, failure: str) -> None:
    """Kill the master under load: every answer is a real verdict or the failure policy's,
    and once Sentinel has promoted the replica the store is back on its own."""
    store = RedisStore(
        own_sentinel.url,
        prefix=f"fo:{uuid.uuid4().hex}:",
        failure=failure,  # type: ignore[arg-type]
        backoff=(0.05, 0.2),
        connect_timeout=0.2,
    )
    rates = parse_rates("1000000/minute")
    verdicts: list[Verdict] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            verdicts.append(store.check("k", rates, "gcra", 1, 0.0))
            time.sleep(0.002)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.2)
        own_sentinel.master.stop()
        deadline = time.monotonic() + SETTLE
        while own_sentinel.master_port() != own_sentinel.replica.port:
            assert time.monotonic() < deadline, "sentinel never promoted the replica"
            time.sleep(0.05)
        seen = len(verdicts)
        while not (len(verdicts) > seen + 20 and all(v.outcomes for v in verdicts[-20:])):
            assert time.monotonic() < deadline, "the store never recovered after the failover"
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
        store.close()
    degraded = [v for v in verdicts if not v.outcomes]
    assert degraded, "the load never saw the master go"
    assert all(v.unavailable and v.allowed == (failure == "fail_open") for v in degraded)
    assert all(v.allowed for v in verdicts if v.outcomes)
    assert store.available


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "service", "db"),
    [
        pytest.param("redis://h:1/0", "server", (), "", 0, id="server"),
        pytest.param(
            "redis+cluster://a:7000,b:7001/", "cluster", (("a", 7000), ("b", 7001)), "", 0, id="cl"
        ),
        pytest.param(
            "redis+sentinel://s1:26379,s2:26380/mymaster/2",
            "sentinel",
            (("s1", 26379), ("s2", 26380)),
            "mymaster",
            2,
            id="sentinel",
        ),
        pytest.param(
            "redis+sentinel://:p%40ss@[::1]:26379/svc",
            "sentinel",
            (("::1", 26379),),
            "svc",
            0,
            id="v6",
        ),
    ],
)
def test_urls(
    url: str, kind: str, nodes: tuple[tuple[str, int], ...], service: str, db: int
) -> None:
    target = parse_target(url)
    assert (target.kind, target.nodes, target.service, target.db) == (kind, nodes, service, db)
    assert "p@ss" not in target.describe()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("localhost:6379", "no scheme", id="no-scheme"),
        pytest.param("memcached://h:1", "not supported", id="scheme"),
        pytest.param("redis+cluster://a/", "host:port", id="no-port"),
        pytest.param("redis+cluster://a:1/3", "database 0", id="cluster-db"),
        pytest.param("redis+sentinel://a:1/", "service", id="no-service"),
        pytest.param("redis+sentinel://a:1/svc/x", "service", id="bad-db"),
    ],
)
def test_bad_urls_raise_at_construction(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStore(url)


def test_built_while_the_cluster_is_unreachable() -> None:
    """A store made before its cluster is up answers by its failure policy, and connects later."""
    store = RedisStore(
        f"redis+cluster://127.0.0.1:{free_port()}/", failure="fail_closed", connect_timeout=0.1
    )
    verdict = store.check("k", RATES, "gcra", 1, 0.0)
    assert (verdict.allowed, verdict.unavailable) == (False, True)
    store.close()
