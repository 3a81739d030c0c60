"""The rate-string parser: accepted forms, canonical names, clear errors."""

from __future__ import annotations

import pytest

from bridge.ratelimit._rates import Rate, parse_rate, parse_rates


@pytest.mark.parametrize(
    ("text", "count", "period", "burst", "name"),
    [
        pytest.param("100/minute", 100, 60, 99, "100/minute", id="slash"),
        pytest.param("10/second", 10, 1, 9, "10/second", id="second"),
        pytest.param("1000 per day", 1000, 86400, 999, "1000/day", id="per"),
        pytest.param("10/second burst 20", 10, 1, 20, "10/second burst 20", id="burst"),
        pytest.param("5 per 10 minutes", 5, 600, 4, "5/10 minutes", id="multiplier"),
        pytest.param("  3 / H ", 3, 3600, 2, "3/hour", id="short-unit-spaces-case"),
        pytest.param("1/s burst 0", 1, 1, 0, "1/second burst 0", id="burst-zero"),
        pytest.param("7/days", 7, 86400, 6, "7/day", id="plural"),
        pytest.param("2 per month", 2, 30 * 86400, 1, "2/month", id="month"),
        pytest.param("2000 per year", 2000, 360 * 86400, 1999, "2000/year", id="year"),
        pytest.param("1/2 years", 1, 720 * 86400, 0, "1/2 years", id="years"),
        pytest.param("500/7days", 500, 7 * 86400, 499, "500/7 days", id="glued-multiplier"),
        pytest.param("1per second", 1, 1, 0, "1/second", id="glued-per"),
    ],
)
def test_parse_rate(text: str, count: int, period: int, burst: int, name: str) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.period, rate.burst, rate.name) == (count, period, burst, name)


def test_derived_values() -> None:
    rate = parse_rate("10/second burst 20")
    assert rate.capacity == 21
    assert rate.interval == pytest.approx(0.1)
    assert rate.window == 3  # 21 requests * 0.1 s, rounded up
    assert parse_rate("100/minute").window == 60


def test_several_rates() -> None:
    rates = parse_rates("10/second;1000/day")
    assert [r.name for r in rates] == ["10/second", "1000/day"]
    assert parse_rates("10/second, 1000/day") == rates
    assert parse_rates("10/second | 1000/day") == rates
    assert parse_rates(["10/second", rates[1]]) == rates
    assert parse_rates(rates[0]) == (rates[0],)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "no rate", id="empty"),
        pytest.param(";", "no rate", id="only-separator"),
        pytest.param("100", "malformed rate", id="no-unit"),
        pytest.param("lots/minute", "malformed rate", id="not-a-number"),
        pytest.param("10/fortnight", "unknown time unit 'fortnight'", id="unknown-unit"),
        pytest.param("10/minute burst", "malformed rate", id="burst-without-number"),
        pytest.param("0/minute", "count must be", id="zero-count"),
        pytest.param("1/0 seconds", "period must be", id="zero-period"),
        pytest.param("1/11 years", "period must be", id="too-long"),
        pytest.param("1/ms", "unknown time unit 'ms'", id="ms-is-not-minutes"),
        pytest.param("1 per millienium", "unknown time unit", id="limits-unknown-unit"),
        pytest.param("1 per year; 2 per decade", "unknown time unit 'decade'", id="limits-decade"),
        pytest.param("-5/minute", "malformed rate", id="negative"),
        pytest.param("10/second;10/second", "twice", id="duplicate"),
        pytest.param("10/minute\x00", "malformed rate", id="nul-byte"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rates(text)


def test_rate_is_a_value() -> None:
    assert parse_rate("2/minute") == Rate(2, 60, 1, "2/minute")


#: The ``limits`` library's own examples (its string-notation docs and parser tests), plus
#: the spellings Flask-Limiter and slowapi users write; each must mean what it means there.
LIMITS_EXAMPLES = [
    "10 per hour",
    "10/hour",
    "10/hour;100/day;2000 per year",
    "100/day, 500/7days",
    "1 per second",
    "1/SECOND",
    "1 / Second",
    "1 per minute",
    "1/MINUTE",
    "1/Minute",
    "1 per hour",
    "1/HOUR",
    "1/Hour",
    "1 per day",
    "1/DAY",
    "1 / Day",
    "1 per month",
    "1/MONTH",
    "1 / Month",
    "1 per year",
    "1/Year",
    "1 / year",
    "1 per 3 hour",
    "1 per 2 hours",
    "1/2 day",
    "1 per 3 hour; 1 per second",
    "1 per 3 hour, 1 per second",
    "5 per 10 minutes",
    "200 per day|50 per hour",
    "1000000000/minute",
]


@pytest.mark.parametrize("text", LIMITS_EXAMPLES)
def test_same_meaning_as_the_limits_library(text: str) -> None:
    from limits import parse_many

    theirs = [(item.amount, item.get_expiry()) for item in parse_many(text)]
    ours = [(rate.count, rate.period) for rate in parse_rates(text)]
    assert ours == theirs


@pytest.mark.parametrize("text", ["1 per millienium", "1 per year; 2 per decade", "per minute"])
def test_rejected_like_the_limits_library(text: str) -> None:
    from limits import parse_many

    with pytest.raises(ValueError, match=r"parse|granularity"):
        parse_many(text)
    with pytest.raises(ValueError, match=r"malformed rate|unknown time unit"):
        parse_rates(text)
