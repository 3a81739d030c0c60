"""Charging after the response: the algorithms' settle, the stores, the options.

The property that makes ``count_when`` exact: a request that reserves and is
given back leaves the key as if it never came (window algorithms always;
GCRA when nothing else arrived meanwhile), and a counted one as if it had been
charged at admission.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.middleware import ResponseHead
from bridge.ratelimit import (
    ChargingStore,
    MemoryStore,
    RateLimit,
    Reservation,
    Rule,
    Verdict,
    response_cost,
)
from bridge.ratelimit._algorithms import ALGORITHMS, CHARGES, RateOutcome, State
from bridge.ratelimit._rates import Rate, parse_rates
from bridge.testing import InnerApp, Request, call_wsgi

ALGORITHM_NAMES = sorted(ALGORITHMS)


def comparable(outcome: RateOutcome) -> tuple[bool, int, float, float]:
    return (
        outcome.allowed,
        outcome.remaining,
        round(outcome.reset, 6),
        round(outcome.retry_after, 6),
    )


def peek(algorithm: str, state: State | None, now: float, rate: Rate) -> RateOutcome:
    """What a cost-1 request would be told now, without consuming anything."""
    outcome = ALGORITHMS[algorithm](state, now, rate, 1)
    return outcome._replace(state=None, expires_at=0.0)


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHM_NAMES),
    requests=st.lists(
        st.tuples(st.floats(min_value=0, max_value=40), st.booleans()), min_size=1, max_size=30
    ),
)
def test_settled_at_once_equals_counting_only_what_counts(
    algorithm: str, requests: list[tuple[float, bool]]
) -> None:
    """Reserve 1, settle at the same instant (1 if counted, else 0) == a key that saw
    only the counted requests: the same admissions and the same header values."""
    rate = parse_rates("3/minute")[0]
    decide, settle = ALGORITHMS[algorithm], CHARGES[algorithm]
    real: State | None = None
    model: State | None = None
    now = 1_000.0
    for gap, counted in requests:
        now += gap
        reserved = decide(real, now, rate, 1)
        wanted = decide(model, now, rate, 1)
        assert comparable(reserved) == comparable(wanted)
        if not reserved.allowed:
            continue
        if counted:
            real, model = reserved.state, wanted.state
        else:
            real = settle(reserved.state, now, rate, -1, now).state
        assert comparable(peek(algorithm, real, now, rate)) == comparable(
            peek(algorithm, model, now, rate)
        )


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(["fixed_window", "sliding_window"]),
    requests=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=50),  # gap to the previous start
            st.floats(min_value=0, max_value=100),  # how long it runs
            st.booleans(),  # counted
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_window_refunds_are_exact_across_windows(
    algorithm: str, requests: list[tuple[float, float, bool]]
) -> None:
    """Overlapping requests, some outliving their window: once all have ended, the key
    is what the counted ones alone make it (the quota is large: nobody is refused)."""
    rate = parse_rates("1000/minute")[0]
    decide, settle = ALGORITHMS[algorithm], CHARGES[algorithm]
    events: list[tuple[float, int, str, bool]] = []
    start = 1_000.0
    for index, (gap, runs, counted) in enumerate(requests):
        start += gap
        events.append((start, index, "start", counted))
        events.append((start + runs, index, "end", counted))
    real: State | None = None
    model: State | None = None
    reserved_at: dict[int, float] = {}
    for now, index, kind, counted in sorted(events, key=lambda e: (e[0], e[2] != "start")):
        if kind == "start":
            real = decide(real, now, rate, 1).state
            reserved_at[index] = now
            if counted:
                model = decide(model, now, rate, 1).state
        elif not counted:
            real = settle(real, now, rate, -1, reserved_at[index]).state
    last = max(e[0] for e in events)
    assert comparable(peek(algorithm, real, last, rate)) == comparable(
        peek(algorithm, model, last, rate)
    )


@pytest.mark.parametrize(
    ("algorithm", "wait"),
    [
        pytest.param("gcra", 95.0, id="gcra"),  # (25 + 1 - 10) * 6 s, less the 1 s since
        pytest.param("sliding_window", 97.4, id="sliding_window"),  # weighs on next window
        pytest.param("fixed_window", 59.0, id="fixed_window"),  # forgotten with its window
    ],
)
def test_a_charge_past_the_quota_is_kept_and_waited_out(algorithm: str, wait: float) -> None:
    rate = parse_rates("10/minute")[0]
    reserved = ALGORITHMS[algorithm](None, 1_020.0, rate, 1)
    charged = CHARGES[algorithm](reserved.state, 1_020.0, rate, 24, 1_020.0)  # 25 in all
    assert charged.remaining == 0
    refused = ALGORITHMS[algorithm](charged.state, 1_021.0, rate, 1)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(wait)


# -- stores --------------------------------------------------------------------------


def test_memory_store_reserves_and_settles() -> None:
    store = MemoryStore()
    assert isinstance(store, ChargingStore)
    rates = parse_rates("2/minute;5/hour")
    first = store.reserve("k", rates, "gcra", 1, 0.0)
    second = store.reserve("k", rates, "gcra", 1, 0.0)
    assert first.verdict.allowed
    assert second.verdict.allowed
    assert first.at == 0.0
    # Two in flight hold the whole 2/minute: a third, concurrent attempt is refused.
    assert not store.reserve("k", rates, "gcra", 1, 0.0).verdict.allowed
    assert store.settle("k", rates, "gcra", first, 1, 0.0) is None  # charged as reserved
    given_back = store.settle("k", rates, "gcra", second, 0, 0.0)
    assert given_back is not None
    assert [o.remaining for o in given_back] == [1, 4]
    assert store.check("k", rates, "gcra", 1, 0.0).allowed


class CheckOnlyStore:
    """A store of the 0.2 protocol: check and slots, no reserve/settle."""

    local = True

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def check(self, key: str, rates: Any, algorithm: str, cost: int, now: float) -> Verdict:
        return self.inner.check(key, rates, algorithm, cost, now)

    async def check_async(
        self, key: str, rates: Any, algorithm: str, cost: int, now: float
    ) -> Verdict:
        return self.inner.check(key, rates, algorithm, cost, now)

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        return True

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool:
        return True

    def release(self, key: str, token: str) -> None:
        pass

    async def release_async(self, key: str, token: str) -> None:
        pass


def test_a_store_without_settle_still_serves_rules_charged_up_front() -> None:
    app = InnerApp().wsgi()
    RateLimit(app, "5/minute", store=CheckOnlyStore())
    with pytest.raises(TypeError, match=r"reserve\(\) and settle\(\).*CheckOnlyStore"):
        RateLimit(app, "5/minute", store=CheckOnlyStore(), count_when=(401,))


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"count_when": "401"}, TypeError, "status codes such as", id="string"),
        pytest.param({"count_when": (401, 999)}, TypeError, "status codes", id="bad-status"),
        pytest.param({"count_when": ()}, TypeError, "status codes", id="empty"),
        pytest.param({"count_when": (True,)}, TypeError, "status codes", id="bool"),
        pytest.param({"cost": "x-tokens"}, ValueError, "cost must be", id="bare-header-name"),
    ],
)
def test_misconfiguration(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RateLimit(InnerApp().wsgi(), "5/minute", **options)


def test_rule_errors_name_the_rule() -> None:
    with pytest.raises(TypeError, match=r"rules\[0\]\.count_when"):
        RateLimit(InnerApp().wsgi(), None, rules=[Rule("5/minute", count_when="4xx")])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        pytest.param(("x tokens",), {}, ValueError, "not an HTTP token", id="header-name"),
        pytest.param((42,), {}, TypeError, "header name or a function", id="number"),
        pytest.param((), {"default": -1}, ValueError, "default must be", id="default"),
        pytest.param((), {"reserve": 1.5}, ValueError, "reserve must be", id="reserve"),
    ],
)
def test_response_cost_misconfiguration(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        response_cost(*args, **kwargs)


def tokens(value: bytes | None) -> ResponseHead:
    headers = () if value is None else ((b"X-Tokens-Used", value),)
    return ResponseHead(200, headers)


def test_response_cost_reads_the_header_or_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    cost = response_cost("X-Tokens-Used", default=7)
    assert cost.units(tokens(b" 1234 ")) == 1234
    assert cost.units(tokens(None)) == 7
    with caplog.at_level(logging.WARNING, "bridge.ratelimit"):
        assert cost.units(tokens(b"12.5")) == 7
        assert cost.units(tokens(b"-3")) == 7
    assert [r.getMessage() for r in caplog.records] == [
        "response_cost: response header x-tokens-used is b'12.5', not a whole number; "
        "charged the default 7 (logged once)"
    ]
    by_status = response_cost(lambda response: 5 if response.status == 200 else 0)
    assert by_status.units(tokens(None)) == 5
    with pytest.raises(ValueError, match="returned -1"):
        response_cost(lambda response: -1).units(tokens(None))


def login_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    decision = environ["bridge.ratelimit"]
    if environ["QUERY_STRING"] == "early":
        decision.charge(2)  # before the head: counts, twice
    ok = environ["QUERY_STRING"] != "wrong"
    start_response("200 OK" if ok else "401 Unauthorized", [("Content-Type", "text/plain")])
    yield f"{decision.remaining} left".encode()
    if environ["QUERY_STRING"] == "late":
        decision.charge(1)  # after the head: the charge is decided already


def test_the_app_charges_before_the_head_not_after() -> None:
    app = RateLimit(login_app, "5/minute", count_when=(401,), clock=lambda: 0.0)
    assert call_wsgi(app, Request(query_string=b"early")).header(b"ratelimit") == (
        b'"5/minute";r=3;t=24'
    )
    late = call_wsgi(app, Request(query_string=b"late"))
    assert late.status == 200
    assert late.error is not None
    assert "the response head is sent" in str(late.error)


def test_charge_on_a_rule_charged_up_front_says_what_to_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = RateLimit(login_app, "5/minute")
    assert call_wsgi(app, Request(query_string=b"early")).status == 500
    assert "give it cost=response_cost() (or count_when=)" in caplog.text


def test_decision_charge_checks_its_units(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        environ["bridge.ratelimit"].charge(-1)
        return []

    result = call_wsgi(RateLimit(app, "5/minute", cost=response_cost()), Request())
    assert result.status == 500
    assert "units must be an int >= 0, not -1" in caplog.text


def test_no_response_head_charges_nothing() -> None:
    app = RateLimit(InnerApp(fail="before_start").wsgi(), "1/minute", count_when=lambda r: True)
    assert [call_wsgi(app, Request()).status for _ in range(3)] == [500, 500, 500]


def test_dry_run_admits_without_holding() -> None:
    app = RateLimit(InnerApp(status=401).wsgi(), "1/minute", count_when=(401,), dry_run=True)
    results = [call_wsgi(app, Request()) for _ in range(3)]
    assert [r.status for r in results] == [401, 401, 401]
    assert results[2].seen is not None
    assert results[2].seen.head.values["bridge.ratelimit"].result == "dry_run"


def test_reservation_is_a_named_tuple() -> None:
    verdict = Verdict(True, ())
    assert Reservation(verdict, 1, 2.0) == (verdict, 1, 2.0, False)
