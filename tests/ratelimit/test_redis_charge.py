"""Charging after the response with a real redis-server: the Lua settle equals Python's,
one round trip for a charge that differs from the reservation, none for one that does not."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import RateLimit
from bridge.ratelimit import Rule, response_cost
from bridge.ratelimit._algorithms import ALGORITHMS, CHARGES, State
from bridge.ratelimit._rates import parse_rates
from bridge.ratelimit.redis import _CHARGE, RedisStore, _charge_reply, _reservation
from bridge.testing import Request, acall_asgi, call_wsgi
from tests.conftest import free_port

from .test_redis_middleware import commands, round_trips

pytestmark = pytest.mark.redis


@settings(max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    spec=st.sampled_from(["3/4 seconds", "2/second burst 3", "5/minute;2/second"]),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=3),  # gap before the request
            st.floats(min_value=0, max_value=6),  # how long until it is settled
            st.integers(min_value=0, max_value=4),  # its charge (it reserved 1)
        ),
        min_size=1,
        max_size=15,
    ),
)
def test_lua_settle_equals_python(
    redis_url: str, algorithm: str, spec: str, steps: list[tuple[float, float, int]]
) -> None:
    if algorithm != "gcra" and "burst" in spec:
        return
    rates = parse_rates(spec)
    store = RedisStore(redis_url, prefix=f"charge-eq:{uuid.uuid4().hex}:")
    keys = store.keys_for("k", rates)
    decide, settle = ALGORITHMS[algorithm], CHARGES[algorithm]
    states: list[State | None] = [None] * len(rates)
    now = 1_700_000_000.0
    try:
        for gap, runs, charge in steps:
            now += gap
            reply = store._check_script(keys, store._args(rates, algorithm, 1, repr(now)))
            reservation = _reservation(reply, len(rates), 1)
            assert reservation.at == now  # Redis's clock, read back exactly
            if not reservation.verdict.allowed:
                continue
            states = [decide(s, now, r, 1).state for s, r in zip(states, rates, strict=True)]
            later = now + runs
            args = store._charge_args(rates, algorithm, reservation, charge, repr(later))
            got = _charge_reply(store._eval(store._sync_client(), _CHARGE, keys, args), len(rates))
            want = [
                settle(s, later, r, charge - 1, now) for s, r in zip(states, rates, strict=True)
            ]
            for g, w in zip(got, want, strict=True):
                assert g.remaining == w.remaining
                assert g.reset == pytest.approx(w.reset, abs=1e-6)
            states = [w.state for w in want]
            now = later
    finally:
        store.close()


def login(environ: Any, start_response: Any) -> Iterable[bytes]:
    ok = environ["QUERY_STRING"] != "wrong"
    start_response("200 OK" if ok else "401 Unauthorized", [("Content-Type", "text/plain")])
    return [b"welcome" if ok else b"wrong password"]


async def login_asgi(scope: Any, receive: Any, send: Any) -> None:
    ok = scope["query_string"] != b"wrong"
    await send({"type": "http.response.start", "status": 200 if ok else 401, "headers": []})
    await send({"type": "http.response.body", "body": b"welcome" if ok else b"wrong password"})


RULE = Rule("3/minute", path="=/login", methods="POST", count_when=(401, 403))


def attempt(wrong: bool) -> Request:
    return Request(method="POST", path="/login", query_string=b"wrong" if wrong else b"")


def test_failed_logins_counted_in_redis_in_one_round_trip_each(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"login:{uuid.uuid4().hex}:")
    app = RateLimit(login, None, rules=[RULE], store=store)
    try:
        call_wsgi(app, attempt(wrong=True))  # loads both scripts
        call_wsgi(app, attempt(wrong=False))
        before = commands(store)
        right = [call_wsgi(app, attempt(wrong=False)) for _ in range(4)]
        middle = commands(store)
        wrong = [call_wsgi(app, attempt(wrong=True)) for _ in range(3)]
        after = commands(store)
    finally:
        store.close()
    # A right password: the check, then the settle that gives the reservation back.
    assert round_trips(before, middle) == {"cmdstat_evalsha": 8}
    # A wrong one is charged what it reserved: the check is its only round trip.
    assert round_trips(middle, after) == {"cmdstat_evalsha": 3}
    assert [r.status for r in right] == [200] * 4
    # A shared store settles after the response: the head shows the reservation.
    assert {r.header(b"ratelimit") for r in right} == {b'"3/minute";r=1;t=40'}
    assert [r.status for r in wrong] == [401, 401, 429]  # the first wrong one counted too


@pytest.mark.anyio
async def test_same_through_asgi(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"login-a:{uuid.uuid4().hex}:")
    app = RateLimit(login_asgi, None, rules=[RULE], store=store)
    try:
        statuses = [(await acall_asgi(app, attempt(wrong=False))).status for _ in range(5)]
        statuses += [(await acall_asgi(app, attempt(wrong=True))).status for _ in range(4)]
        statuses.append((await acall_asgi(app, attempt(wrong=False))).status)
    finally:
        await store.aclose()
    assert statuses == [200] * 5 + [401, 401, 401, 429, 429]


@pytest.mark.anyio
async def test_tokens_from_a_header_through_asgi(redis_url: str) -> None:
    async def llm(scope: Any, receive: Any, send: Any) -> None:
        used = scope["query_string"]
        headers = [(b"x-tokens-used", used)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"..."})

    store = RedisStore(redis_url, prefix=f"llm:{uuid.uuid4().hex}:")
    app = RateLimit(
        llm, "1000/day", store=store, cost=response_cost("x-tokens-used"), algorithm="fixed_window"
    )
    try:
        first = await acall_asgi(app, Request(query_string=b"600"))
        second = await acall_asgi(app, Request(query_string=b"600"))
        third = await acall_asgi(app, Request(query_string=b"1"))
    finally:
        await store.aclose()
    assert [first.status, second.status, third.status] == [200, 200, 429]
    assert (first.header(b"ratelimit") or b"").startswith(b'"1000/day";r=999;')  # reserved 1
    assert (second.header(b"ratelimit") or b"").startswith(b'"1000/day";r=399;')  # 600 charged


def test_local_fallback_settles_where_it_reserved() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisStore(dead, failure="local_fallback", connect_timeout=0.2, timeout=0.2)
    app = RateLimit(login, None, rules=[RULE], store=store)
    statuses = [call_wsgi(app, attempt(wrong=False)).status for _ in range(4)]
    statuses += [call_wsgi(app, attempt(wrong=True)).status for _ in range(4)]
    assert statuses == [200] * 4 + [401, 401, 401, 429]
