"""MemoryStore: atomic multi-rate checks, the key bound, eviction logging, threads."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc

import pytest

from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._rates import parse_rates


def test_multi_rate_denial_consumes_nothing() -> None:
    store = MemoryStore()
    rates = parse_rates("2/second;3/minute")
    decisions = [store.check("k", rates, "gcra", 1, t).allowed for t in (0, 0, 0, 1, 1, 2)]
    assert decisions == [True, True, False, True, False, False]
    verdict = store.check("k", rates, "gcra", 1, 2.0)
    assert [o.allowed for o in verdict.outcomes] == [True, False]
    # The per-second rate admitted but consumed nothing: it reports its full state.
    assert verdict.outcomes[0].remaining == 2


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window"])
def test_keys_are_independent(algorithm: str) -> None:
    store = MemoryStore()
    rates = parse_rates("1/minute")
    assert store.check("a", rates, algorithm, 1, 0.0).allowed
    assert not store.check("a", rates, algorithm, 1, 1.0).allowed
    assert store.check("b", rates, algorithm, 1, 1.0).allowed


def test_bounded_with_lru_eviction_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(max_keys=3, log_interval=60.0)
    rates = parse_rates("1/hour")
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    for i in range(10):
        store.check(f"k{i}", rates, "gcra", 1, 1.0)
    assert len(store) == 3
    assert store.evictions == 7
    assert len(caplog.records) == 1
    assert "max_keys=3" in caplog.records[0].getMessage()
    # The most recently used keys survive; an evicted key starts afresh.
    assert not store.check("k9", rates, "gcra", 1, 2.0).allowed
    assert store.check("k0", rates, "gcra", 1, 2.0).allowed
    store.check("k10", rates, "gcra", 1, 62.0)
    assert len(caplog.records) == 2


def test_expired_entries_are_dropped_without_a_sweeper() -> None:
    store = MemoryStore()
    rates = parse_rates("10/second")
    for i in range(100):
        store.check(f"k{i}", rates, "gcra", 1, 0.0)
    for i in range(100):
        store.check("hot", rates, "gcra", 1, 10.0 + i)
    assert len(store) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_million_keys_stay_under_the_bound() -> None:
    """Key spraying: 10**6 distinct keys; entries and memory stay bounded."""
    store = MemoryStore(max_keys=50_000, log_interval=1e9)
    rates = parse_rates("5/minute")
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(1_000_000):
            store.check(f"203.0.{i >> 8 & 255}.{i & 255}/{i}", rates, "gcra", 1, i * 1e-6)
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 50_000
    assert store.evictions == 950_000
    per_key = current / 50_000
    print(f"MemoryStore: {current / 2**20:.1f} MiB for 50 000 keys ({per_key:.0f} B/key)")
    assert current < 50_000 * 500  # about 350 B a key, with 20-character keys


def test_threads_never_overshoot() -> None:
    store = MemoryStore()
    rates = parse_rates("100/hour")
    admitted = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        admitted.append(sum(store.check("k", rates, "gcra", 1, 5.0).allowed for _ in range(50)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 100


def test_concurrency_slots() -> None:
    store = MemoryStore()
    assert store.acquire("k", 2, "t1", 0.0)
    assert store.acquire("k", 2, "t2", 0.0)
    assert not store.acquire("k", 2, "t3", 0.0)
    store.release("k", "t1")
    store.release("k", "t1")  # releasing twice frees one slot only
    assert store.in_flight("k") == 1
    assert store.acquire("k", 2, "t3", 0.0)
    store.release("k", "t2")
    store.release("k", "t3")
    assert store.in_flight("k") == 0


def test_max_keys_validated() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=0)
