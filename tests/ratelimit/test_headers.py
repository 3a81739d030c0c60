"""The IETF RateLimit fields, Retry-After and the 429 bodies (sans-IO)."""

from __future__ import annotations

import pytest

from bridge.ratelimit._algorithms import RateOutcome, gcra
from bridge.ratelimit._headers import (
    PROBLEM_TYPE,
    policies_for,
    problem_members,
    ratelimit_fields,
    retry_after_seconds,
    sf_string,
)
from bridge.ratelimit._rates import parse_rates


def outcome(allowed: bool, remaining: int, reset: float, retry_after: float = 0.0) -> RateOutcome:
    return RateOutcome(allowed, None, remaining, reset, retry_after, 0.0)


def test_fields_for_two_policies() -> None:
    policies = policies_for(parse_rates("10/second;1000/day"), "fixed_window")
    fields = ratelimit_fields(policies, [outcome(True, 9, 0.4), outcome(True, 999, 86399.2)])
    assert fields == [
        (b"ratelimit-policy", b'"10/second";q=10;w=1, "1000/day";q=1000;w=86400'),
        (b"ratelimit", b'"10/second";r=9;t=1, "1000/day";r=999;t=86400'),
    ]


def test_gcra_policy_advertises_capacity_and_refill_window() -> None:
    (policy,) = policies_for(parse_rates("10/second burst 20"), "gcra")
    assert (policy.quota, policy.window) == (21, 3)


def test_legacy_fields_describe_the_tightest_policy() -> None:
    policies = policies_for(parse_rates("10/second;1000/day"), "fixed_window")
    fields = ratelimit_fields(
        policies, [outcome(True, 5, 0.5), outcome(True, 2, 50.0)], legacy=True
    )
    assert fields[2:] == [
        (b"x-ratelimit-limit", b"1000"),
        (b"x-ratelimit-remaining", b"2"),
        (b"x-ratelimit-reset", b"50"),
    ]


@pytest.mark.parametrize(
    ("waits", "expected"),
    [
        pytest.param([0.2], 1, id="rounds-up"),
        pytest.param([0.0], 1, id="never-zero"),
        pytest.param([1.0000000001], 1, id="float-noise"),
        pytest.param([2.5, 7.1], 8, id="longest"),
    ],
)
def test_retry_after(waits: list[float], expected: int) -> None:
    assert retry_after_seconds([outcome(False, 0, w, w) for w in waits]) == expected


def test_retry_after_ignores_admitting_policies() -> None:
    assert retry_after_seconds([outcome(True, 3, 500.0), outcome(False, 0, 4.0, 2.2)]) == 3


def test_problem_members() -> None:
    policies = policies_for(parse_rates("1/second;5/minute"), "gcra")
    members = problem_members(policies, [outcome(True, 0, 1), outcome(False, 0, 9, 9)])
    assert members["type"] == PROBLEM_TYPE
    assert members["violated-policies"] == ["5/minute"]


def test_sf_string_escapes_and_rejects() -> None:
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError, match="printable ASCII"):
        sf_string("caf\u00e9")


def test_fields_from_real_outcomes() -> None:
    rates = parse_rates("2/second")
    first = gcra(None, 0.0, rates[0], 1)
    fields = dict(ratelimit_fields(policies_for(rates, "gcra"), [first]))
    assert fields[b"ratelimit"] == b'"2/second";r=1;t=1'
