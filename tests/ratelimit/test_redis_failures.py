"""RedisStore when Redis is down, slow, or comes back: the failure policies, logged once."""

from __future__ import annotations

import logging
import time

import pytest

from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit.redis import RedisStore
from tests.conftest import free_port

from .redis_process import RedisProcess, own_redis

__all__ = ("own_redis",)

pytestmark = pytest.mark.redis
RATES = parse_rates("3/minute")


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.ratelimit"]


def wait_until_reprobed(store: RedisStore) -> None:
    """Sleep past the store's next probe time (backoff is real time, not the fake clock)."""
    time.sleep(max(0.0, store._health.next_probe - time.monotonic()) + 0.01)


def test_down_at_start_fail_open(caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", failure="fail_open")
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    verdicts = [store.check("k", RATES, "gcra", 1, float(i)) for i in range(10)]
    assert all(v.allowed and v.unavailable and not v.outcomes for v in verdicts)
    assert not store.available
    (line,) = outage_lines(caplog)
    assert "unavailable" in line
    assert "fail_open" in line
    # The same fields for structured logging.
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.__dict__["ratelimit_outage"] == "started"
    assert record.__dict__["ratelimit_failure"] == "fail_open"
    assert record.__dict__["ratelimit_store"].startswith("redis://127.0.0.1:")
    assert record.__dict__["ratelimit_error"].startswith(
        ("ConnectionError", "ConnectionRefusedError")
    )
    store.close()


def test_down_at_start_fail_closed() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", failure="fail_closed")
    verdict = store.check("k", RATES, "gcra", 1, 0.0)
    assert (verdict.allowed, verdict.unavailable) == (False, True)
    assert not store.acquire("k", 5, "t", 0.0)
    store.close()


@pytest.mark.timeout(30)
def test_killed_mid_run_local_fallback_then_recovery(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    store = RedisStore(own_redis.url, failure="local_fallback", backoff=(0.05, 0.2))
    try:
        assert [store.check("k", RATES, "gcra", 1, 0.0).allowed for _ in range(2)] == [True] * 2
        own_redis.stop()
        # While down: each process limits on its own (a fresh MemoryStore, its own counts).
        local = [store.check("k", RATES, "gcra", 1, 0.0) for _ in range(4)]
        assert [v.allowed for v in local] == [True, True, True, False]
        assert not any(v.unavailable for v in local)
        assert len(outage_lines(caplog)) == 1
        own_redis.start()
        wait_until_reprobed(store)
        # Back: Redis's own state (empty after the restart) rules again.
        assert store.check("k", RATES, "gcra", 1, 0.0).allowed
        assert store.available
        lines = outage_lines(caplog)
        assert len(lines) == 2
        assert "is back" in lines[1]
        assert caplog.records[-1].__dict__["ratelimit_outage"] == "ended"
        assert caplog.records[-1].__dict__["ratelimit_outage_seconds"] > 0
    finally:
        store.close()


@pytest.mark.timeout(30)
def test_outage_is_logged_once_and_probes_back_off(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    store = RedisStore(own_redis.url, failure="fail_open", backoff=(0.05, 0.1))
    try:
        assert store.check("k", RATES, "gcra", 1, 0.0).allowed
        own_redis.stop()
        for _ in range(3):
            for _ in range(50):
                assert store.check("k", RATES, "gcra", 1, 0.0).unavailable
            wait_until_reprobed(store)
        # 150 requests, 1 failure + 3 probes that reached for Redis; one log line.
        assert store._health.failures == 1 + 2
        assert len(outage_lines(caplog)) == 1
    finally:
        store.close()


@pytest.mark.timeout(30)
def test_slow_redis_counts_as_down(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url, failure="fail_closed", timeout=0.1)
    admin = RedisStore(own_redis.url)
    try:
        assert store.check("k", RATES, "gcra", 1, 0.0).allowed
        # A pause far longer than the timeout, lifted in `finally`: a loaded machine that
        # descheduled this thread for a while must not see the pause expire first.
        admin._sync_client().client_pause(20_000, all=False)  # WRITE mode: UNPAUSE still runs
        # Without the 0.1 s timeout the call would wait out the pause and succeed.
        verdict = store.check("k", RATES, "gcra", 1, 0.0)
        assert (verdict.allowed, verdict.unavailable) == (False, True)
    finally:
        admin._sync_client().client_unpause()
        store.close()
        admin.close()


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_async_outage_and_recovery(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url, failure="fail_closed", backoff=(0.05, 0.1))
    try:
        assert (await store.check_async("k", RATES, "gcra", 1, 0.0)).allowed
        own_redis.stop()
        assert (await store.check_async("k", RATES, "gcra", 1, 0.0)).unavailable
        own_redis.start()
        wait_until_reprobed(store)
        verdict = await store.check_async("k", RATES, "gcra", 1, 0.0)
        assert verdict.allowed
        assert not verdict.unavailable
    finally:
        await store.aclose()


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_cancelled_probe_lets_the_next_caller_probe(own_redis: RedisProcess) -> None:
    import anyio

    store = RedisStore(own_redis.url, failure="fail_closed", backoff=(0.01, 0.01))
    try:
        assert (await store.check_async("k", RATES, "gcra", 1, 0.0)).allowed
        own_redis.stop()
        assert (await store.check_async("k", RATES, "gcra", 1, 0.0)).unavailable
        own_redis.start()
        admin = RedisStore(own_redis.url)
        admin._sync_client().client_pause(300)  # the next probe hangs...
        admin.close()
        wait_until_reprobed(store)
        with anyio.move_on_after(0.05):  # ...and its request is cancelled
            await store.check_async("k", RATES, "gcra", 1, 0.0)
        assert not store._health.probing
        await anyio.sleep(0.35)  # the pause is over
        verdict = await store.check_async("k", RATES, "gcra", 1, 0.0)
        assert verdict.allowed
    finally:
        await store.aclose()
