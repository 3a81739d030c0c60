"""The algorithms as pure functions, and GCRA against a model of nginx's limit_req."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.ratelimit._algorithms import (
    RateOutcome,
    State,
    fixed_window,
    gcra,
    sliding_window,
)
from bridge.ratelimit._rates import parse_rate


def run(algorithm: object, spec: str, times: list[float], cost: int = 1) -> list[RateOutcome]:
    rate = parse_rate(spec)
    state: State | None = None
    outcomes = []
    for now in times:
        outcome = algorithm(state, now, rate, cost)  # type: ignore[operator]
        state = outcome.state
        outcomes.append(outcome)
    return outcomes


def test_gcra_admits_capacity_then_one_per_interval() -> None:
    outcomes = run(gcra, "10/second burst 4", [100.0] * 6 + [100.05, 100.1, 100.1])
    assert [o.allowed for o in outcomes] == [True] * 5 + [False, False, True, False]
    assert [o.remaining for o in outcomes[:5]] == [4, 3, 2, 1, 0]
    assert outcomes[5].retry_after == pytest.approx(0.1)
    assert outcomes[6].retry_after == pytest.approx(0.05)


def test_gcra_default_burst_is_the_count() -> None:
    outcomes = run(gcra, "100/minute", [0.0] * 101)
    assert sum(o.allowed for o in outcomes) == 100
    assert outcomes[0].reset == pytest.approx(0.6)
    assert outcomes[99].reset == pytest.approx(60.0)
    assert outcomes[100].retry_after == pytest.approx(0.6)


def test_gcra_recovers_fully_after_idle() -> None:
    outcomes = run(gcra, "2/second", [0.0, 0.0, 0.0, 10.0, 10.0, 10.0])
    assert [o.allowed for o in outcomes] == [True, True, False, True, True, False]


def test_gcra_cost() -> None:
    outcomes = run(gcra, "10/second", [0.0, 0.0, 0.0], cost=4)
    assert [o.allowed for o in outcomes] == [True, True, False]
    assert outcomes[1].remaining == 2
    assert outcomes[2].retry_after == pytest.approx(0.2)


def test_gcra_cost_above_capacity_never_passes() -> None:
    (outcome,) = run(gcra, "10/second", [0.0], cost=11)
    assert not outcome.allowed
    assert outcome.retry_after == 1.0
    assert outcome.state is None


def test_denied_does_not_consume() -> None:
    rate = parse_rate("1/second")
    first = gcra(None, 0.0, rate, 1)
    denied = gcra(first.state, 0.5, rate, 1)
    assert not denied.allowed
    assert denied.state == first.state


def nginx_limit_req(rate_rps: int, burst: int, times_ms: list[int]) -> list[bool]:
    """nginx's ngx_http_limit_req_lookup with nodelay, in its integer milli-request units."""
    rate = rate_rps * 1000
    excess = 0
    last: int | None = None
    decisions = []
    for now in times_ms:
        if last is None:
            decisions.append(True)
            excess, last = 0, now
            continue
        ms = max(0, now - last)
        new_excess = max(0, excess - rate * ms // 1000 + 1000)
        if new_excess > burst * 1000:
            decisions.append(False)
            continue
        excess, last = new_excess, now
        decisions.append(True)
    return decisions


@settings(max_examples=300, deadline=None)
@given(
    rate_rps=st.sampled_from([1, 2, 5, 10, 20, 50]),
    burst=st.integers(min_value=0, max_value=8),
    gaps=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=60),
)
def test_gcra_equals_nginx_burst_nodelay(rate_rps: int, burst: int, gaps: list[int]) -> None:
    times_ms = []
    now = 1_000_000
    for gap in gaps:
        now += gap
        times_ms.append(now)
    ours = run(gcra, f"{rate_rps}/second burst {burst}", [t / 1000 for t in times_ms])
    assert [o.allowed for o in ours] == nginx_limit_req(rate_rps, burst, times_ms)


def test_fixed_window() -> None:
    outcomes = run(fixed_window, "3/minute", [60.0, 61.0, 62.0, 63.0, 119.9, 120.0])
    assert [o.allowed for o in outcomes] == [True, True, True, False, False, True]
    assert [o.remaining for o in outcomes] == [2, 1, 0, 0, 0, 2]
    assert outcomes[3].retry_after == pytest.approx(57.0)
    assert outcomes[3].reset == pytest.approx(57.0)


def test_sliding_window_weights_the_previous_window() -> None:
    rate = parse_rate("10/minute")
    state: State | None = None
    for _ in range(10):
        outcome = sliding_window(state, 30.0, rate, 1)
        assert outcome.allowed
        state = outcome.state
    # At t=90 the previous window (0..60 held 10... here 10 at t=30, window 0..60)
    # still weighs 10 * 0.5 = 5: five more fit.
    admitted = 0
    for _ in range(10):
        outcome = sliding_window(state, 90.0, rate, 1)
        admitted += outcome.allowed
        state = outcome.state
    assert admitted == 5
    assert not outcome.allowed
    # used=5, prev=10: room 10-5-1=4 needs 10*(1-x/60) <= 4, x=36: t=96.
    assert outcome.retry_after == pytest.approx(6.0)
    assert sliding_window(state, 96.0, rate, 1).allowed
    assert not sliding_window(state, 95.9, rate, 1).allowed


def test_sliding_window_forgets_two_windows_back() -> None:
    outcomes = run(sliding_window, "2/minute", [0.0, 0.0, 0.0, 130.0, 130.0, 130.0])
    assert [o.allowed for o in outcomes] == [True, True, False, True, True, False]


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from([gcra, fixed_window, sliding_window]),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=40),
    cost=st.integers(min_value=1, max_value=3),
)
def test_retry_after_is_honest(algorithm: object, gaps: list[float], cost: int) -> None:
    """Waiting ``retry_after`` after a denial is enough, and it is never negative."""
    rate = parse_rate("3/4 seconds")
    state: State | None = None
    now = 0.0
    for gap in gaps:
        now += gap
        outcome = algorithm(state, now, rate, cost)  # type: ignore[operator]
        assert outcome.retry_after >= 0
        assert 0 <= outcome.remaining <= rate.capacity
        if not outcome.allowed:
            later = algorithm(outcome.state, now + outcome.retry_after + 1e-6, rate, cost)  # type: ignore[operator]
            assert later.allowed
        state = outcome.state
