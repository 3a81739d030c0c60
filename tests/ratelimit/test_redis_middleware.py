"""RateLimit and ConcurrencyLimit over a real Redis, under WSGI and ASGI (asyncio and trio)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import ConcurrencyLimit, RateLimit
from bridge.ratelimit.redis import RedisStore
from bridge.testing import InnerApp, Request, Result, acall_asgi, call_wsgi
from tests.conftest import free_port

pytestmark = pytest.mark.redis

SCRIPT_INTERNAL = {"cmdstat_get", "cmdstat_set", "cmdstat_time", "cmdstat_info"}


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, prefix=f"mw:{uuid.uuid4().hex}:")
    yield store
    store.close()


def comparable(results: list[Result]) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    return [(r.status, r.headers, r.body) for r in results]


def commands(store: RedisStore) -> dict[str, int]:
    stats: dict[str, Any] = store._sync_client().info("commandstats")
    return {name: value["calls"] for name, value in stats.items()}


def round_trips(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if name not in SCRIPT_INTERNAL and calls != before.get(name, 0)
    }


@pytest.mark.anyio
async def test_same_decisions_and_headers_under_wsgi_and_asgi(redis_url: str) -> None:
    wsgi_store = RedisStore(redis_url, prefix=f"w:{uuid.uuid4().hex}:")
    asgi_store = RedisStore(redis_url, prefix=f"a:{uuid.uuid4().hex}:")
    try:
        wsgi_app = RateLimit(InnerApp().wsgi(), "3/hour;100/day", store=wsgi_store)
        asgi_app = RateLimit(InnerApp().asgi(), "3/hour;100/day", store=asgi_store)
        wsgi = [call_wsgi(wsgi_app, Request()) for _ in range(5)]
        asgi = [await acall_asgi(asgi_app, Request()) for _ in range(5)]
        assert comparable(wsgi) == comparable(asgi)
        assert [r.status for r in wsgi] == [200, 200, 200, 429, 429]
        assert wsgi[0].header(b"ratelimit") == b'"3/hour";r=2;t=1200, "100/day";r=99;t=864'
        assert wsgi[3].header(b"retry-after") == b"1200"
    finally:
        await asgi_store.aclose()
        wsgi_store.close()


@pytest.mark.anyio
async def test_one_round_trip_per_request_with_headers(store: RedisStore) -> None:
    app = RateLimit(InnerApp().asgi(), "5/minute;1000/day", store=store, legacy_headers=True)
    sync_app = RateLimit(InnerApp().wsgi(), "5/minute;1000/day", store=store)
    try:
        await acall_asgi(app, Request(client=("10.0.0.9", 1)))  # loads the script, connects
        call_wsgi(sync_app, Request(client=("10.0.0.9", 1)))
        before = commands(store)
        for _ in range(10):
            assert (await acall_asgi(app, Request())).header(b"ratelimit") is not None
            assert call_wsgi(sync_app, Request()).header(b"ratelimit") is not None
        assert round_trips(before, commands(store)) == {"cmdstat_evalsha": 20}
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_fail_closed_is_a_503_with_retry_after() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", failure="fail_closed")
    app = RateLimit(InnerApp().asgi(), "5/minute", store=store)
    wsgi_app = RateLimit(InnerApp().wsgi(), "5/minute", store=store)
    try:
        for result in (await acall_asgi(app, Request()), call_wsgi(wsgi_app, Request())):
            assert result.status == 503
            assert result.header(b"retry-after") == b"5"
            assert result.header(b"ratelimit") is None
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_fail_open_admits_without_quota_headers() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", failure="fail_open")
    app = RateLimit(InnerApp().asgi(), "1/minute", store=store)
    try:
        results = [await acall_asgi(app, Request()) for _ in range(3)]
        assert [r.status for r in results] == [200, 200, 200]
        assert all(r.header(b"ratelimit") is None for r in results)
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_concurrency_limit_over_redis_releases(store: RedisStore) -> None:
    asgi = ConcurrencyLimit(InnerApp(fail="before_start").asgi(), 1, store=store)
    wsgi = ConcurrencyLimit(InnerApp().wsgi(), 1, store=store)
    try:
        for _ in range(3):
            assert (await acall_asgi(asgi, Request())).status == 500
            assert call_wsgi(wsgi, Request()).status == 200
        assert store._sync_client().zcard(store._slot_key("conn|conn|1|127.0.0.1")) == 0
    finally:
        await store.aclose()
