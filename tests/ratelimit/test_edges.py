"""``r`` and ``t`` at the edges of a quota, the same for every algorithm and both stores.

The headers' ``r`` is the requests still admitted right now; ``t`` the whole seconds until the
quota is fully restored (0 while nothing is in use), as docs/ratelimit.md defines them. Each
case is a run of requests at one instant on a fresh key: the edges are an idle key (cost 0),
the first request, the last admitted one and the first refused one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest

from bridge.ratelimit._headers import Policy, ratelimit_fields
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit._store import Verdict

#: A minute boundary plus 10 s, near today's Unix time (Redis's clock's magnitude).
NOW = 1_699_999_990.0
BILLION = 10**9

#: (algorithm, rate, [(cost, allowed, r, t)]): t for fixed_window is the window's end (50 s
#: away), for sliding_window the end of the next window (110 s), for GCRA the level's drain.
EDGES = [
    pytest.param(
        "gcra",
        "1000000000/minute",
        [
            (0, True, BILLION, 0),  # idle: the full quota, restored now
            (1, True, BILLION - 1, 1),  # first request: 60 ns to drain, rounded up
            (BILLION - 2, True, 1, 60),
            (1, True, 0, 60),  # the last admitted
            (1, False, 0, 60),  # the first refused
        ],
        id="gcra-billion",
    ),
    pytest.param(
        "fixed_window",
        "1000000000/minute",
        [
            (0, True, BILLION, 0),
            (1, True, BILLION - 1, 50),
            (BILLION - 2, True, 1, 50),
            (1, True, 0, 50),
            (1, False, 0, 50),
        ],
        id="fixed-billion",
    ),
    pytest.param(
        "sliding_window",
        "1000000000/minute",
        [
            (0, True, BILLION, 0),
            (1, True, BILLION - 1, 110),
            (BILLION - 2, True, 1, 110),
            (1, True, 0, 110),
            (1, False, 0, 110),
        ],
        id="sliding-billion",
    ),
    pytest.param(
        "gcra",
        "10/second burst 4",
        [(0, True, 5, 0), (1, True, 4, 1), (3, True, 1, 1), (1, True, 0, 1), (1, False, 0, 1)],
        id="gcra-burst",
    ),
    pytest.param(
        "fixed_window",
        "3/minute",
        [(0, True, 3, 0), (1, True, 2, 50), (1, True, 1, 50), (1, True, 0, 50), (1, False, 0, 50)],
        id="fixed-small",
    ),
    pytest.param(
        "sliding_window",
        "3/minute",
        [
            (0, True, 3, 0),
            (1, True, 2, 110),
            (1, True, 1, 110),
            (1, True, 0, 110),
            (1, False, 0, 110),
        ],
        id="sliding-small",
    ),
]

Check = Callable[[str, str, int], Verdict]


def r_and_t(algorithm: str, spec: str, verdict: Verdict) -> tuple[int, int]:
    """The ``r`` and ``t`` parameters of the ``RateLimit`` field sent for ``verdict``."""
    (rate,) = parse_rates(spec)
    fields = dict(ratelimit_fields([Policy(rate, algorithm)], verdict.outcomes))
    params = dict(part.split("=") for part in fields[b"ratelimit"].decode().split(";")[1:])
    return int(params["r"]), int(params["t"])


def run_edges(check: Check, algorithm: str, spec: str, steps: Sequence[tuple[int, ...]]) -> None:
    for cost, allowed, r, t in steps:
        verdict = check(algorithm, spec, cost)
        assert (verdict.allowed, *r_and_t(algorithm, spec, verdict)) == (allowed, r, t), cost


@pytest.mark.parametrize(("algorithm", "spec", "steps"), EDGES)
def test_memory_store_edges(algorithm: str, spec: str, steps: Sequence[tuple[int, ...]]) -> None:
    store = MemoryStore()

    def check(algorithm: str, spec: str, cost: int) -> Verdict:
        return store.check("k", parse_rates(spec), algorithm, cost, NOW)

    run_edges(check, algorithm, spec, steps)


@pytest.fixture
def redis_check(redis_url: str) -> Iterator[Check]:
    """The Lua script on a real Redis, on the same fake clock as the memory store."""
    from bridge.ratelimit.redis import RedisStore, _split_reply

    store = RedisStore(redis_url, prefix=f"edges:{uuid.uuid4().hex}:")

    def check(algorithm: str, spec: str, cost: int) -> Verdict:
        rates = parse_rates(spec)
        args = store._args(rates, algorithm, cost, repr(NOW))
        return _split_reply(store._check_script(store.keys_for("k", rates), args), len(rates))

    yield check
    store.close()


@pytest.mark.redis
@pytest.mark.parametrize(("algorithm", "spec", "steps"), EDGES)
def test_redis_store_edges(
    redis_check: Check, algorithm: str, spec: str, steps: Sequence[tuple[int, ...]]
) -> None:
    run_edges(redis_check, algorithm, spec, steps)


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window"])
def test_first_request_on_redis_clock(redis_url: str, algorithm: str) -> None:
    """On Redis's own clock (a Unix timestamp) a count of 10**9 still leaves 10**9 - 1."""
    from bridge.ratelimit.redis import RedisStore

    store = RedisStore(redis_url, prefix=f"first:{uuid.uuid4().hex}:")
    try:
        rates = parse_rates("1000000000/minute")
        verdict = store.check("k", rates, algorithm, 1, 0.0)
        assert verdict.allowed
        assert verdict.outcomes[0].remaining == BILLION - 1
    finally:
        store.close()


def test_fixed_window_remaining_matches_limits() -> None:
    """slowapi's and Flask-Limiter's fixed window (the ``limits`` library) count the same."""
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(MemoryStorage())
    item = parse("1000000000/day")
    store = MemoryStore()
    rates = parse_rates("1000000000/day")
    for cost in (1, 5, BILLION - 7, 1):
        assert limiter.hit(item, "k", cost=cost)
        ours = store.check("k", rates, "fixed_window", cost, NOW)
        assert ours.outcomes[0].remaining == limiter.get_window_stats(item, "k").remaining
    assert not limiter.hit(item, "k")
    assert not store.check("k", rates, "fixed_window", 1, NOW).allowed
