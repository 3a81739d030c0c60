"""Apps the multi-process tests serve with gunicorn and uvicorn (configured by environment)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from bridge import ConcurrencyLimit, RateLimit
from bridge._http.types import Environ, StartResponse
from bridge.ratelimit.redis import RedisStore


def _store() -> RedisStore:
    return RedisStore(
        os.environ["RL_REDIS_URL"],
        prefix=os.environ["RL_PREFIX"],
        failure=os.environ.get("RL_FAILURE", "fail_open"),  # type: ignore[arg-type]
        backoff=(0.05, 0.2),
    )


def hello_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


async def hello_asgi(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


async def slow_asgi(scope: Any, receive: Any, send: Any) -> None:
    """``/slow`` answers once the test pushes to ``<prefix>release`` in Redis (30 s at most)."""
    if scope["type"] == "http" and scope["path"] == "/slow":
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(os.environ["RL_REDIS_URL"])
        await client.blpop([os.environ["RL_PREFIX"] + "release"], timeout=30)
        await client.aclose()
    await hello_asgi(scope, receive, send)


LIMIT = os.environ.get("RL_LIMIT", "10/hour")
wsgi_app = RateLimit(hello_wsgi, LIMIT, store=_store()) if "RL_REDIS_URL" in os.environ else None
asgi_app = RateLimit(hello_asgi, LIMIT, store=_store()) if "RL_REDIS_URL" in os.environ else None
conc_asgi_app = (
    ConcurrencyLimit(slow_asgi, 1, store=_store()) if "RL_REDIS_URL" in os.environ else None
)

#: No store configuration needed: a MemoryStore, for the unix-socket test.
memory_asgi_app = RateLimit(hello_asgi, "1/hour")
