"""Rate-limit benchmarks against the peers, in one run, interleaved and repeated.

    PYTHONPATH=$PWD python benchmarks/bench_ratelimit.py [--rounds 5] [--quick]

Sections (each prints the median of the rounds and ratios to ours):

1. Store check cost, in memory: ``MemoryStore.check`` vs limits' ``MemoryStorage``
   (fixed window, moving window, sliding-window counter; ``hit`` alone and
   ``hit`` + ``get_window_stats``, which a middleware needs for its headers).
2. Redis: checks per second and round trips per check (counted with
   ``INFO commandstats`` on a private redis-server) for ``RedisStore`` vs
   limits' ``RedisStorage``; then whole requests with headers on: Flask +
   Flask-Limiter vs Flask + ``RateLimit``, Starlette + slowapi vs Starlette +
   ``RateLimit``.
3. Middleware overhead per request with a MemoryStore, under WSGI and ASGI,
   against the bare hello-world app and against the core's pass-through; around
   a Flask hello world against Flask-Limiter in memory, and around a Starlette
   hello world against slowapi in memory (both with their headers on).
4. Limits declared at the route, with headers on: ``@limit`` on a Flask view and a
   Starlette endpoint and ``Depends(limit(...).dependency)`` in FastAPI, each under
   ``RateLimit(routes=True)``, against Flask-Limiter's and slowapi's decorators; the
   µs each adds over the same bare hello world, in memory, and round trips per
   request with Redis (section 2b).

Not part of the test run. Needs the ``bench`` extra and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks._peers import with_flask_limiter, with_slowapi
from bridge import MemoryStore, RateLimit
from bridge.middleware import Exchange, Middleware, RequestHead, ResponseHead
from bridge.ratelimit import limit as route_limit
from bridge.ratelimit import parse_rates
from bridge.ratelimit.redis import RedisStore

Case = Callable[[int], None]  # runs n operations


def measure(case: Case, n: int) -> float:
    """Seconds per operation for one run of ``n`` operations."""
    gc.collect()
    started = time.perf_counter()
    case(n)
    return (time.perf_counter() - started) / n


def run_interleaved(cases: dict[str, tuple[Case, int]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for case, n in cases.values():
        case(max(1, n // 10))  # warm up
    for _ in range(rounds):
        for name, (case, n) in cases.items():
            samples[name].append(measure(case, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: dict[str, float], ours: str, unit: str = "us") -> None:
    print(f"\n## {title}")
    base = medians[ours]
    for name, value in medians.items():
        shown = value * 1e6 if unit == "us" else 1 / value
        label = "us/op" if unit == "us" else "ops/s"
        ratio = value / base
        print(f"  {name:<52} {shown:>10.2f} {label}   x{ratio:5.2f} of {ours}")


# -- 1. memory store ---------------------------------------------------------------------


def memory_cases(quick: bool) -> dict[str, tuple[Case, int]]:
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    n = 20_000 if quick else 100_000
    keys = [f"10.0.{i >> 8}.{i & 255}" for i in range(1000)]
    rates = parse_rates("1000000/minute")
    item = parse("1000000/minute")
    mono = time.monotonic

    def ours(algorithm: str) -> Case:
        store = MemoryStore()

        def case(count: int) -> None:
            check = store.check
            for i in range(count):
                check(keys[i % 1000], rates, algorithm, 1, mono())

        return case

    def theirs(strategy: Any, stats: bool) -> Case:
        limiter = strategy(MemoryStorage())

        def case(count: int) -> None:
            hit, window = limiter.hit, limiter.get_window_stats
            for i in range(count):
                key = keys[i % 1000]
                hit(item, key)
                if stats:
                    window(item, key)

        return case

    return {
        "bridge MemoryStore gcra (headers included)": (ours("gcra"), n),
        "bridge MemoryStore fixed_window": (ours("fixed_window"), n),
        "bridge MemoryStore sliding_window": (ours("sliding_window"), n),
        "limits MemoryStorage fixed window hit": (theirs(FixedWindowRateLimiter, False), n),
        "limits MemoryStorage fixed window hit+stats": (theirs(FixedWindowRateLimiter, True), n),
        "limits MemoryStorage moving window hit": (theirs(MovingWindowRateLimiter, False), n),
        "limits MemoryStorage sliding counter hit": (
            theirs(SlidingWindowCounterRateLimiter, False),
            n,
        ),
    }


# -- 2. redis ---------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free port for the benchmark only."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            [*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def command_calls(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return {name: value["calls"] for name, value in stats.items()}


#: Commands Lua scripts run inside Redis: not sent by the client.
SCRIPT_INTERNAL = {"cmdstat_get", "cmdstat_set", "cmdstat_time", "cmdstat_info"}


class WriteCounter:
    """Counts client writes to Redis (one per round trip; a pipeline is one write)."""

    def __init__(self) -> None:
        import redis.asyncio.connection
        import redis.connection

        self.writes = 0
        self._patched: list[tuple[Any, Any]] = []
        classes = (redis.connection.AbstractConnection, redis.asyncio.connection.AbstractConnection)
        for cls in classes:
            self._patched.append((cls, cls.send_packed_command))
        sync_cls, sync_send = self._patched[0]
        async_cls, async_send = self._patched[1]
        counter = self

        def send(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counter.writes += 1
            return sync_send(conn, *args, **kwargs)

        async def asend(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counter.writes += 1
            return await async_send(conn, *args, **kwargs)

        sync_cls.send_packed_command = send
        async_cls.send_packed_command = asend

    def restore(self) -> None:
        for cls, original in self._patched:
            cls.send_packed_command = original


def redis_costs(url: str, case: Case, n: int) -> tuple[float, float]:
    """(round trips, commands) per operation; our script's inner commands excluded."""
    case(5)
    before = command_calls(url)
    counter = WriteCounter()
    try:
        case(n)
    finally:
        counter.restore()
    after = command_calls(url)
    commands = sum(
        calls - before.get(name, 0) for name, calls in after.items() if name not in SCRIPT_INTERNAL
    )
    return counter.writes / n, commands / n


def redis_store_cases(url: str, quick: bool) -> dict[str, tuple[Case, int]]:
    from limits import parse
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    n = 1000 if quick else 4000
    rates = parse_rates("1000000/minute")
    item = parse("1000000/minute")
    store = RedisStore(url, prefix=f"bench:{uuid.uuid4().hex}:")
    storage = RedisStorage(url)

    def ours(count: int) -> None:
        for i in range(count):
            store.check(f"k{i % 100}", rates, "gcra", 1, 0.0)

    def theirs(strategy: Any, stats: bool) -> Case:
        limiter = strategy(storage)
        tag = uuid.uuid4().hex  # each case its own keys

        def case(count: int) -> None:
            for i in range(count):
                limiter.hit(item, tag, f"k{i % 100}")
                if stats:
                    limiter.get_window_stats(item, tag, f"k{i % 100}")

        return case

    return {
        "bridge RedisStore (gcra, all header values)": (ours, n),
        "limits RedisStorage fixed window hit": (theirs(FixedWindowRateLimiter, False), n),
        "limits RedisStorage fixed window hit+stats": (
            theirs(FixedWindowRateLimiter, True),
            n,
        ),
        "limits RedisStorage moving window hit": (theirs(MovingWindowRateLimiter, False), n),
    }


def environ_for(path: str = "/") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "5000",
        "HTTP_HOST": "bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def wsgi_caller(app: Any, check_header: bytes | None = None) -> Case:
    base = environ_for()
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(headers)
        return None

    def case(count: int) -> None:
        for _ in range(count):
            seen.clear()
            body = app(dict(base), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if check_header is not None:
            names = {k.lower() for k, _ in seen[-1]}
            assert check_header.decode() in names, seen[-1]

    return case


def scope_for(path: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("10.1.2.3", 5000),
        "server": ("bench", 80),
    }


def asgi_caller(app: Any, check_header: bytes | None = None) -> Case:
    """Calls on one event loop kept for the whole run, like a server's."""
    base = scope_for()
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def case(count: int) -> None:
        heads: list[Any] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                heads.append(message["headers"])

        async def main() -> None:
            for _ in range(count):
                await app(dict(base), receive, send)

        loop.run_until_complete(main())
        if check_header is not None:
            names = {bytes(k).lower() for k, _ in heads[-1]}
            assert check_header in names, heads[-1]

    return case


def framework_cases(url: str, quick: bool) -> dict[str, tuple[Case, int]]:
    """Whole requests with headers on, Redis-backed: the peers' integrations vs ours."""
    import flask
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    n = 500 if quick else 2000
    limit = "1000000/minute"

    def flask_app() -> flask.Flask:
        app = flask.Flask("bench")
        app.add_url_rule("/", "index", lambda: "hello")
        return app

    fl = with_flask_limiter(flask_app(), limit, url, key_prefix=uuid.uuid4().hex)
    ours_flask = flask_app()
    store = RedisStore(url, prefix=f"bf:{uuid.uuid4().hex}:")
    ours_flask.wsgi_app = RateLimit(ours_flask.wsgi_app, limit, store=store)  # type: ignore[method-assign]

    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    st = with_slowapi(
        Starlette(routes=[Route("/", index)]), limit, url, key_prefix=uuid.uuid4().hex
    )
    ours_st = Starlette(routes=[Route("/", index)])
    ours_st.add_middleware(RateLimit, limit=limit, store=store)

    return {
        "Flask + bridge RateLimit(RedisStore) [WSGI]": (
            wsgi_caller(ours_flask, b"ratelimit"),
            n,
        ),
        "Flask + Flask-Limiter(redis, headers) [WSGI]": (
            wsgi_caller(fl, b"x-ratelimit-remaining"),
            n,
        ),
        "Starlette + bridge RateLimit(RedisStore) [ASGI]": (
            asgi_caller(ours_st, b"ratelimit"),
            n,
        ),
        "Starlette + slowapi(redis, headers) [ASGI]": (asgi_caller(st), n),
        **route_redis_cases(url, limit, n),
    }


def route_redis_cases(url: str, limit: str, n: int) -> dict[str, tuple[Case, int]]:
    """The route-level forms with Redis: ours vs the peers' decorators."""
    store = RedisStore(url, prefix=f"br:{uuid.uuid4().hex}:")
    fl_ours, fl_theirs = flask_decorated(limit, store, url)
    st_ours, st_theirs = starlette_decorated(limit, store, url)
    return {
        "Flask + bridge @limit(RedisStore) [WSGI]": (wsgi_caller(fl_ours, b"ratelimit"), n),
        "Flask + Flask-Limiter @limit(redis) [WSGI]": (
            wsgi_caller(fl_theirs, b"x-ratelimit-remaining"),
            n,
        ),
        "Starlette + bridge @limit(RedisStore) [ASGI]": (asgi_caller(st_ours, b"ratelimit"), n),
        "Starlette + slowapi @limit(redis) [ASGI]": (
            asgi_caller(st_theirs, b"x-ratelimit-remaining"),
            n,
        ),
    }


def flask_decorated(limit: str, store: Any, storage_uri: str) -> tuple[Any, Any]:
    """Flask hello worlds whose view carries the limit: ``@limit`` under
    ``RateLimit(routes=True)``, and Flask-Limiter's ``@limiter.limit`` (headers on)."""
    import flask
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    ours = flask.Flask("ours")
    ours.add_url_rule("/", "index", route_limit(limit)(lambda: "hello"))
    ours.wsgi_app = RateLimit(ours.wsgi_app, None, store=store, routes=True)  # type: ignore[method-assign]
    theirs = flask.Flask("theirs")
    limiter = Limiter(
        get_remote_address,
        app=theirs,
        storage_uri=storage_uri,
        headers_enabled=True,
        key_prefix=uuid.uuid4().hex,
    )
    theirs.add_url_rule("/", "index", limiter.limit(limit)(lambda: "hello"))
    return ours, theirs


def starlette_decorated(limit: str, store: Any, storage_uri: str) -> tuple[Any, Any]:
    """Starlette hello worlds whose endpoint carries the limit: ``@limit`` under
    ``RateLimit(routes=True)``, and slowapi's ``@limiter.limit`` (headers on)."""
    from slowapi import Limiter
    from slowapi.errors import RateLimitExceeded
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @route_limit(limit)
    async def ours_index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    ours = Starlette(routes=[Route("/", ours_index)])
    ours.add_middleware(RateLimit, limit=None, store=store, routes=True)

    limiter = Limiter(
        key_func=lambda request: request.client.host,
        storage_uri=storage_uri,
        headers_enabled=True,
        key_prefix=uuid.uuid4().hex,
    )

    @limiter.limit(limit)
    async def theirs_index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    theirs = Starlette(routes=[Route("/", theirs_index)])
    theirs.state.limiter = limiter
    theirs.add_exception_handler(RateLimitExceeded, lambda r, e: PlainTextResponse("", 429))
    return ours, theirs


def fastapi_decorated(limit: str) -> tuple[Any, Any, Any]:
    """FastAPI hello worlds: bare, ``Depends(limit(...).dependency)`` under
    ``RateLimit(routes=True)``, and slowapi's decorator (headers on), in memory."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import PlainTextResponse
    from slowapi import Limiter
    from slowapi.errors import RateLimitExceeded

    async def hello() -> str:  # async everywhere: a sync endpoint costs a thread hop
        return "hello"

    bare = FastAPI()
    bare.get("/", response_class=PlainTextResponse)(hello)
    ours = FastAPI()
    dependencies = [Depends(route_limit(limit, name="index").dependency)]
    ours.get("/", response_class=PlainTextResponse, dependencies=dependencies)(hello)
    ours.add_middleware(RateLimit, limit=None, routes=True)
    limiter = Limiter(
        key_func=lambda request: request.client.host, storage_uri="memory://", headers_enabled=True
    )
    theirs = FastAPI()

    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    # FastAPI resolves the parameter's class from the annotations, which this module
    # postpones to strings naming a function-local import.
    index.__annotations__ = {"request": Request, "return": PlainTextResponse}
    theirs.get("/")(limiter.limit(limit)(index))

    theirs.state.limiter = limiter
    theirs.add_exception_handler(RateLimitExceeded, lambda r, e: PlainTextResponse("", 429))
    return bare, ours, theirs


# -- 3. middleware overhead -----------------------------------------------------------


def hello_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


async def hello_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


class PassThrough(Middleware):
    """The core's cheapest path: an exchange that only forwards."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return Exchange(head, now)


class _OneHeader(Exchange):
    def response(self, head: ResponseHead) -> ResponseHead:
        return ResponseHead(head.status, (*head.headers, (b"x-one", b"1")))


class OneHeader(Middleware):
    """The core with a response hook that adds one header: what any header middleware pays."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _OneHeader(head, now)


def _flask_limiter_memory(limit: str) -> Any:
    """A Flask hello world limited by Flask-Limiter in memory, with its headers on."""
    import flask

    app = flask.Flask("limited")
    app.add_url_rule("/", "index", lambda: "hello")
    return with_flask_limiter(app, limit, "memory://")


def _starlette_apps(limit: str) -> tuple[Any, Any, Any]:
    """Starlette hello worlds: bare, under ``RateLimit`` and under slowapi (both in memory)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    bare = Starlette(routes=[Route("/", index)])
    ours = Starlette(routes=[Route("/", index)])
    ours.add_middleware(RateLimit, limit=limit)
    theirs = with_slowapi(Starlette(routes=[Route("/", index)]), limit, "memory://")
    return bare, ours, theirs


def overhead_cases(quick: bool) -> dict[str, tuple[Case, int]]:
    import flask

    n = 5000 if quick else 20000
    limit = "1000000000/minute"
    fl = flask.Flask("hello")
    fl.add_url_rule("/", "index", lambda: "hello")
    starlette, starlette_ours, starlette_slowapi = _starlette_apps(limit)
    return {
        "WSGI hello": (wsgi_caller(hello_wsgi), n),
        "WSGI core pass-through exchange": (wsgi_caller(PassThrough(hello_wsgi)), n),
        "WSGI core exchange adding one header": (wsgi_caller(OneHeader(hello_wsgi)), n),
        "WSGI RateLimit(MemoryStore) hello": (
            wsgi_caller(RateLimit(hello_wsgi, limit), b"ratelimit"),
            n,
        ),
        "WSGI Flask hello": (wsgi_caller(fl), n),
        "WSGI RateLimit(MemoryStore) Flask hello": (
            wsgi_caller(RateLimit(fl.wsgi_app, limit), b"ratelimit"),
            n,
        ),
        "ASGI hello": (asgi_caller(hello_asgi), n),
        "ASGI core pass-through exchange": (asgi_caller(PassThrough(hello_asgi)), n),
        "ASGI core exchange adding one header": (asgi_caller(OneHeader(hello_asgi)), n),
        "ASGI RateLimit(MemoryStore) hello": (
            asgi_caller(RateLimit(hello_asgi, limit), b"ratelimit"),
            n,
        ),
        "WSGI Flask-Limiter(memory, headers) Flask hello": (
            wsgi_caller(_flask_limiter_memory(limit), b"x-ratelimit-remaining"),
            n,
        ),
        "ASGI Starlette hello": (asgi_caller(starlette), n),
        "ASGI RateLimit(MemoryStore) Starlette hello": (
            asgi_caller(starlette_ours, b"ratelimit"),
            n,
        ),
        "ASGI slowapi(memory, headers) Starlette hello": (asgi_caller(starlette_slowapi), n),
    }


#: (ours, peer) pairs compared in section 2b.
PAIRS = (
    (
        "Flask + bridge RateLimit(RedisStore) [WSGI]",
        "Flask + Flask-Limiter(redis, headers) [WSGI]",
    ),
    (
        "Starlette + bridge RateLimit(RedisStore) [ASGI]",
        "Starlette + slowapi(redis, headers) [ASGI]",
    ),
    (
        "Flask + bridge @limit(RedisStore) [WSGI]",
        "Flask + Flask-Limiter @limit(redis) [WSGI]",
    ),
    (
        "Starlette + bridge @limit(RedisStore) [ASGI]",
        "Starlette + slowapi @limit(redis) [ASGI]",
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer operations per round")
    parser.add_argument("--routes", action="store_true", help="section 4 only")
    args = parser.parse_args()
    if args.routes:
        report_routes(args.rounds, args.quick)
        return
    print(f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds, medians")

    report(
        "1. in-memory store check",
        run_interleaved(memory_cases(args.quick), args.rounds),
        "bridge MemoryStore gcra (headers included)",
    )

    server = PrivateRedis()
    try:
        store_cases = redis_store_cases(server.url, args.quick)
        request_cases = framework_cases(server.url, args.quick)
        for title, cases in (
            ("2a. Redis store check (checks/s)", store_cases),
            ("2b. whole requests, Redis, headers on (req/s)", request_cases),
        ):
            costs = {name: redis_costs(server.url, case, 50) for name, (case, _n) in cases.items()}
            medians = run_interleaved(cases, args.rounds)
            report(title, medians, next(iter(cases)), unit="ops")
            for name, (trips, commands) in costs.items():
                print(f"  {name:<52} {trips:5.2f} round trips, {commands:5.2f} commands / request")
            for ours, theirs in PAIRS:
                if ours in medians and theirs in medians:
                    ratio = medians[theirs] / medians[ours]
                    print(f"  {ours} is {ratio:.2f}x the requests/s of {theirs}")
    finally:
        server.stop()

    medians = run_interleaved(overhead_cases(args.quick), args.rounds)
    report("3. middleware overhead per request (MemoryStore)", medians, "WSGI hello")
    for plain, wrapped in (
        ("WSGI hello", "WSGI RateLimit(MemoryStore) hello"),
        ("WSGI Flask hello", "WSGI RateLimit(MemoryStore) Flask hello"),
        ("ASGI hello", "ASGI RateLimit(MemoryStore) hello"),
        ("WSGI core exchange adding one header", "WSGI RateLimit(MemoryStore) hello"),
        ("ASGI core exchange adding one header", "ASGI RateLimit(MemoryStore) hello"),
        ("WSGI Flask hello", "WSGI Flask-Limiter(memory, headers) Flask hello"),
        ("ASGI Starlette hello", "ASGI RateLimit(MemoryStore) Starlette hello"),
        ("ASGI Starlette hello", "ASGI slowapi(memory, headers) Starlette hello"),
    ):
        extra = medians[wrapped] - medians[plain]
        print(
            f"  {wrapped} vs {plain}: +{extra * 1e6:.2f} us "
            f"({extra / medians[plain] * 100:.0f}% of {plain})"
        )
    for base, ours, theirs in (
        (
            "WSGI Flask hello",
            "WSGI RateLimit(MemoryStore) Flask hello",
            "WSGI Flask-Limiter(memory, headers) Flask hello",
        ),
        (
            "ASGI Starlette hello",
            "ASGI RateLimit(MemoryStore) Starlette hello",
            "ASGI slowapi(memory, headers) Starlette hello",
        ),
    ):
        added_ours = medians[ours] - medians[base]
        added_theirs = medians[theirs] - medians[base]
        print(f"  {ours} adds {added_ours / added_theirs:.2f}x what {theirs} adds")
    report_routes(args.rounds, args.quick)


def route_cases(quick: bool) -> dict[str, tuple[Case, int]]:
    """Section 4: the route-level forms around hello worlds, in memory, headers on."""
    import flask
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    n = 5000 if quick else 20000
    limit = "1000000000/minute"
    fl = flask.Flask("hello")
    fl.add_url_rule("/", "index", lambda: "hello")
    fl_ours, fl_theirs = flask_decorated(limit, MemoryStore(), "memory://")

    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    st = Starlette(routes=[Route("/", index)])
    st_ours, st_theirs = starlette_decorated(limit, MemoryStore(), "memory://")
    fa, fa_ours, fa_theirs = fastapi_decorated(limit)
    fl_linked = flask.Flask("linked")
    fl_linked.add_url_rule("/", "index", lambda: "hello")
    linked_wsgi = RateLimit(fl_linked.wsgi_app, None, routes=True)
    linked_asgi = Starlette(routes=[Route("/", index)])
    linked_asgi.add_middleware(RateLimit, limit=None, routes=True)
    return {
        "WSGI Flask hello": (wsgi_caller(fl), n),
        "WSGI Flask hello, routes=True, no limit": (wsgi_caller(linked_wsgi), n),
        "WSGI Flask @limit hello": (wsgi_caller(fl_ours, b"ratelimit"), n),
        "WSGI Flask-Limiter @limit hello": (wsgi_caller(fl_theirs, b"x-ratelimit-remaining"), n),
        "ASGI Starlette hello": (asgi_caller(st), n),
        "ASGI Starlette hello, routes=True, no limit": (asgi_caller(linked_asgi), n),
        "ASGI Starlette @limit hello": (asgi_caller(st_ours, b"ratelimit"), n),
        "ASGI slowapi @limit Starlette hello": (
            asgi_caller(st_theirs, b"x-ratelimit-remaining"),
            n,
        ),
        "ASGI FastAPI hello": (asgi_caller(fa), n),
        "ASGI FastAPI Depends(limit) hello": (asgi_caller(fa_ours, b"ratelimit"), n),
        "ASGI slowapi @limit FastAPI hello": (
            asgi_caller(fa_theirs, b"x-ratelimit-remaining"),
            n,
        ),
    }


ROUTE_TRIPLES = (
    ("WSGI Flask hello", "WSGI Flask @limit hello", "WSGI Flask-Limiter @limit hello"),
    ("ASGI Starlette hello", "ASGI Starlette @limit hello", "ASGI slowapi @limit Starlette hello"),
    (
        "ASGI FastAPI hello",
        "ASGI FastAPI Depends(limit) hello",
        "ASGI slowapi @limit FastAPI hello",
    ),
)


def report_routes(rounds: int, quick: bool) -> None:
    medians = run_interleaved(route_cases(quick), rounds)
    report("4. limits at the route (MemoryStore, headers on)", medians, "WSGI Flask hello")
    for base in ("WSGI Flask hello", "ASGI Starlette hello"):
        linked = medians[f"{base}, routes=True, no limit"] - medians[base]
        print(f"  routes=True on a request no limit covers ({base}): +{linked * 1e6:.1f} us")
    for base, ours, theirs in ROUTE_TRIPLES:
        added_ours = medians[ours] - medians[base]
        added_theirs = medians[theirs] - medians[base]
        print(
            f"  {ours}: +{added_ours * 1e6:.1f} us; {theirs}: +{added_theirs * 1e6:.1f} us "
            f"({added_ours / added_theirs:.2f}x)"
        )


if __name__ == "__main__":
    main()
