"""Websocket limits with a real redis-server, on asyncio and trio: the handshake's check and
the connection's slot go through the store, and the slot comes back when it closes."""

from __future__ import annotations

import uuid

import anyio
import pytest

from bridge.ratelimit import ConcurrencyLimit, RateLimit
from bridge.ratelimit.redis import RedisStore
from tests.middleware.conformance.cases_ratelimit_websocket import (
    CLOSED,
    DENIAL,
    accepted,
    echo_once,
    echo_until_closed,
    handshake,
    hold_open,
    kinds,
)

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


async def test_handshakes_limited_in_redis(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"ws:{uuid.uuid4().hex}:")
    app = RateLimit(echo_once, "2/minute", store=store, websocket=True)
    try:
        first, second = await handshake(app), await handshake(app)
        assert kinds(first) == kinds(second) == kinds(accepted("-"))
        assert [m["text"] for m in (first[1], second[1])] == ["1", "0"]  # the decisions
        fields = [dict(m[0]["headers"]) for m in (first, second)]  # on the accepts
        assert [f[b"ratelimit-policy"] for f in fields] == [b'"2/minute";q=2;w=60'] * 2
        assert [f[b"ratelimit"].split(b";t=")[0] for f in fields] == [
            b'"2/minute";r=1',
            b'"2/minute";r=0',
        ]
        assert await handshake(app) == CLOSED
        refused = await handshake(app, DENIAL)
    finally:
        await store.aclose()
    assert refused[0]["status"] == 429
    assert (b"ratelimit", b'"2/minute";r=0;t=60') in refused[0]["headers"]


async def test_connection_slots_in_redis_come_back_on_close(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"wsc:{uuid.uuid4().hex}:")
    app = ConcurrencyLimit(echo_until_closed, 1, store=store, websocket=True)
    try:
        async with anyio.create_task_group() as group:
            opened, closer = anyio.Event(), anyio.Event()
            group.start_soon(hold_open, app, opened, closer)
            await opened.wait()
            assert await handshake(app) == CLOSED
            closer.set()
        # The first connection's task has ended, its slot released in Redis (shielded).
        again, again_closer = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(hold_open, app, again, again_closer)
            with anyio.fail_after(10):  # refused, it would never open
                await again.wait()
            assert await handshake(app) == CLOSED  # and it holds the slot now
            again_closer.set()
    finally:
        await store.aclose()
