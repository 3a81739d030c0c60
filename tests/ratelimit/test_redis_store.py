"""RedisStore against a real redis-server: the Lua script equals the Python algorithms."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.ratelimit._algorithms import ALGORITHMS, State
from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit.redis import RedisStore, _split_reply

pytestmark = pytest.mark.redis

#: Commands the Lua script runs inside Redis (not round trips), and this test's own INFO.
SCRIPT_INTERNAL = {"cmdstat_get", "cmdstat_set", "cmdstat_time", "cmdstat_info"}


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    yield store
    store.close()


@settings(max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    spec=st.sampled_from(["3/4 seconds", "2/second burst 3", "5/minute;2/second"]),
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=25),
    cost=st.integers(min_value=1, max_value=2),
)
def test_lua_equals_python(
    redis_url: str, algorithm: str, spec: str, gaps: list[float], cost: int
) -> None:
    if algorithm != "gcra" and "burst" in spec:
        return
    rates = parse_rates(spec)
    store = RedisStore(redis_url, prefix=f"eq:{uuid.uuid4().hex}:")
    keys = store.keys_for("k", rates)
    states: list[State | None] = [None] * len(rates)
    now = 1_700_000_000.0
    try:
        for gap in gaps:
            now += gap
            args = store._args(rates, algorithm, cost, repr(now))
            verdict = _split_reply(store._check_script(keys, args), len(rates))
            decide = ALGORITHMS[algorithm]
            expected = [decide(s, now, r, cost) for s, r in zip(states, rates, strict=True)]
            assert verdict.allowed == all(o.allowed for o in expected)
            if not verdict.allowed:  # the admitting rates are reported unconsumed
                expected = [
                    o if not o.allowed else decide(s, now, r, 0)
                    for o, s, r in zip(expected, states, rates, strict=True)
                ]
            for got, want in zip(verdict.outcomes, expected, strict=True):
                assert (got.allowed, got.remaining) == (want.allowed, want.remaining)
                assert got.reset == pytest.approx(want.reset, abs=1e-6)  # whole microseconds
                assert got.retry_after == pytest.approx(want.retry_after, abs=1e-6)
            if verdict.allowed:
                states = [o.state for o in expected]
    finally:
        store.close()


def test_check_uses_one_round_trip_with_headers(store: RedisStore) -> None:
    rates = parse_rates("5/minute;100/day")
    store.check("warm", rates, "gcra", 1, 0.0)  # loads the script once
    client = store._sync_client()
    before = client.info("commandstats")
    for _ in range(20):
        verdict = store.check("client-1", rates, "gcra", 1, 0.0)
    after = client.info("commandstats")
    calls = {
        name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"]
        for name in after
        if name not in SCRIPT_INTERNAL
    }
    # Round trips are the commands the client sent: EVALSHA only, once per check.
    assert {name: n for name, n in calls.items() if n} == {"cmdstat_evalsha": 20}
    assert not verdict.allowed
    assert [o.remaining for o in verdict.outcomes] == [0, 95]


def test_keys_are_prefixed_and_hash_tagged(store: RedisStore) -> None:
    rates = parse_rates("5/second")
    store.check("1.2.3.4", rates, "gcra", 1, 0.0)
    (key,) = store.keys_for("1.2.3.4", rates)
    assert key == f"{store.prefix}{{1.2.3.4}}:5/second"
    ttl = store._sync_client().pttl(key)
    assert 0 < ttl <= 1000


def test_noscript_fallback(store: RedisStore) -> None:
    rates = parse_rates("5/second")
    store._sync_client().script_flush()
    assert store.check("k", rates, "gcra", 1, 0.0).allowed


def test_concurrency_slots(store: RedisStore) -> None:
    assert store.acquire("k", 2, "a", 0.0)
    assert store.acquire("k", 2, "b", 0.0)
    assert not store.acquire("k", 2, "c", 0.0)
    store.release("k", "a")
    assert store.acquire("k", 2, "c", 0.0)


@pytest.mark.anyio
async def test_async_paths(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"async:{uuid.uuid4().hex}:")
    rates = parse_rates("2/minute")
    try:
        results = [(await store.check_async("k", rates, "gcra", 1, 0.0)).allowed for _ in range(3)]
        assert results == [True, True, False]
        assert await store.acquire_async("c", 1, "t1", 0.0)
        assert not await store.acquire_async("c", 1, "t2", 0.0)
        await store.release_async("c", "t1")
        assert await store.acquire_async("c", 1, "t2", 0.0)
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"failure": "explode"}, "failure must be", id="policy"),
        pytest.param({"prefix": "a{b}"}, "braces", id="prefix"),
        pytest.param({"timeout": 0}, "positive", id="timeout"),
        pytest.param({"lease": 0}, "lease", id="lease"),
    ],
)
def test_misconfiguration(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStore(**options)  # type: ignore[arg-type]


def test_app_clocks_do_not_matter(redis_url: str) -> None:
    """Two "machines" whose clocks disagree by an hour share one limit exactly."""
    rates = parse_rates("4/hour")
    prefix = f"skew:{uuid.uuid4().hex}:"
    machine_a, machine_b = (
        RedisStore(redis_url, prefix=prefix),
        RedisStore(redis_url, prefix=prefix),
    )
    try:
        decisions = [
            (machine_a if i % 2 else machine_b).check("k", rates, "gcra", 1, 5.0 + (i % 2) * 3600)
            for i in range(6)
        ]
        assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2
    finally:
        machine_a.close()
        machine_b.close()


def test_a_dead_workers_slot_comes_back_after_its_lease(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"lease:{uuid.uuid4().hex}:", lease=0.2)
    try:
        assert store.acquire("k", 1, "dead-worker", 0.0)  # never released
        assert not store.acquire("k", 1, "next", 0.0)
        time.sleep(0.3)
        assert store.acquire("k", 1, "next", 0.0)
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_given_client_serves_every_interface(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    store = RedisStore(
        "redis://wrong-host.invalid:1/0", client=client, prefix=f"c:{uuid.uuid4().hex}:"
    )
    try:
        rates = parse_rates("1/minute")
        assert (await store.check_async("k", rates, "gcra", 1, 0.0)).allowed
        assert not store.check("k", rates, "gcra", 1, 0.0).allowed
        assert store.available
    finally:
        await store.aclose()


def test_keys_of_one_check_share_a_cluster_slot(store: RedisStore) -> None:
    from redis.crc import key_slot

    rates = parse_rates("10/second;100/minute;1000/day")
    keys = [*store.keys_for("203.0.113.9", rates), store._slot_key("203.0.113.9")]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    other = store.keys_for("203.0.113.10", rates)
    assert key_slot(other[0].encode()) != key_slot(keys[0].encode())
