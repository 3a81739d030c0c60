"""Each middleware's added cost per request through real in-process clients.

The other scripts call the app directly, which is the strictest reading of "an
in-process hello world". Here the same hello worlds are requested the way
tests and in-process callers do: Flask through werkzeug's test ``Client``
(WSGI), Starlette through ``httpx.AsyncClient`` over ``httpx.ASGITransport``
(ASGI, asyncio). Every middleware runs next to the peer it replaces, in the same
run: variants interleaved (shuffled each round) and repeated, the minimum of the
rounds reported (the steadiest figure on a shared machine), with the cost added
over the bare app as a percentage of it and as a ratio to the peer's.

    PYTHONPATH=$PWD python benchmarks/bench_clients.py [--rounds 5] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from flask import Flask
from secure.middleware import SecureASGIMiddleware, SecureWSGIMiddleware
from starlette.applications import Starlette
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from benchmarks._peers import SAME_AS_SECURE, SECURE, with_flask_limiter, with_slowapi
from bridge import CustomHeaders, ProxyHeaders, RateLimit, RequestBuffering, SecurityHeaders

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
LIMIT = "1000000000/minute"
BODY = b"x" * 100

#: variant -> the peer whose added cost it is compared with
PEERS = {
    "bridge ProxyHeaders": ("werkzeug ProxyFix", "uvicorn ProxyHeadersMiddleware"),
    "bridge SecurityHeaders": ("secure SecureWSGIMiddleware", "secure SecureASGIMiddleware"),
    "bridge RateLimit (memory)": ("Flask-Limiter (memory)", "slowapi (memory)"),
    "bridge RequestBuffering, 100-byte POST": ("Starlette RequestBodyLimitMiddleware, POST",),
}


# -- WSGI: Flask through werkzeug's test client ---------------------------------------


def flask_app() -> Flask:
    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: "hello", methods=["GET", "POST"])
    return app


def wsgi_variants() -> dict[str, tuple[Any, bool]]:
    """name -> (WSGI app, sends a 100-byte POST rather than a GET)."""
    app = flask_app().wsgi_app
    return {
        "bare": (app, False),
        "bare, POST": (app, True),
        "bridge ProxyHeaders": (ProxyHeaders(app), False),
        "werkzeug ProxyFix": (ProxyFix(app, x_for=1, x_proto=1), False),
        "bridge SecurityHeaders": (SecurityHeaders(app, **SAME_AS_SECURE), False),
        "secure SecureWSGIMiddleware": (SecureWSGIMiddleware(app, secure=SECURE), False),
        "bridge CustomHeaders": (
            CustomHeaders(app, set_response={"cache-control": "no-store"}),
            False,
        ),
        "bridge RateLimit (memory)": (RateLimit(app, LIMIT), False),
        "Flask-Limiter (memory)": (with_flask_limiter(flask_app(), LIMIT, "memory://"), False),
        "bridge RequestBuffering, GET": (RequestBuffering(app), False),
        "bridge RequestBuffering, 100-byte POST": (RequestBuffering(app), True),
    }


def wsgi_runner(app: Any, post: bool) -> Callable[[int], float]:
    client = Client(app)
    environ_base = {"REMOTE_ADDR": "127.0.0.1"}

    def run(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            if post:
                response = client.post("/", data=BODY, environ_base=environ_base)
            else:
                response = client.get("/", headers=FORWARDED, environ_base=environ_base)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code} from a benchmark request")
        return (time.perf_counter() - start) / count

    return run


# -- ASGI: Starlette through httpx's ASGITransport ------------------------------------


async def index(request: StarletteRequest) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("hello")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/", index, methods=["GET", "POST"])])


def asgi_variants() -> dict[str, tuple[Any, bool]]:
    app = starlette_app()
    return {
        "bare": (app, False),
        "bare, POST": (app, True),
        "bridge ProxyHeaders": (ProxyHeaders(app), False),
        "uvicorn ProxyHeadersMiddleware": (ProxyHeadersMiddleware(app, "127.0.0.1"), False),
        "bridge SecurityHeaders": (SecurityHeaders(app, **SAME_AS_SECURE), False),
        "secure SecureASGIMiddleware": (SecureASGIMiddleware(app, secure=SECURE), False),
        "bridge CustomHeaders": (
            CustomHeaders(app, set_response={"cache-control": "no-store"}),
            False,
        ),
        "bridge RateLimit (memory)": (RateLimit(app, LIMIT), False),
        "slowapi (memory)": (with_slowapi(starlette_app(), LIMIT, "memory://"), False),
        "bridge RequestBuffering, GET": (RequestBuffering(app), False),
        "bridge RequestBuffering, 100-byte POST": (RequestBuffering(app), True),
        "Starlette RequestBodyLimitMiddleware, POST": (
            RequestBodyLimitMiddleware(app, max_body_size=10 * 1024 * 1024),
            True,
        ),
    }


def asgi_runner(loop: asyncio.AbstractEventLoop, app: Any, post: bool) -> Callable[[int], float]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def batch(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            if post:
                response = await client.post("/", content=BODY)
            else:
                response = await client.get("/", headers=FORWARDED)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code} from a benchmark request")
        return (time.perf_counter() - start) / count

    return lambda count: loop.run_until_complete(batch(count))


# -- timing and report ----------------------------------------------------------------


def measure(runners: dict[str, Callable[[int], float]], args: Any) -> dict[str, float]:
    for run in runners.values():
        run(50)  # warm up: imports, caches, first-request work
    samples: dict[str, list[float]] = {name: [] for name in runners}
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        order = list(runners)
        rng.shuffle(order)
        for name in order:
            samples[name].append(runners[name](args.requests))
    return {name: min(values) for name, values in samples.items()}


def report(title: str, best: dict[str, float]) -> None:
    print(f"\n== {title}")
    print(f"  {'variant':44} {'us/req':>8} {'added us':>9} {'added %':>8}  vs peer")
    for name, value in best.items():
        base = best["bare, POST" if name.endswith("POST") else "bare"]
        added = value - base
        note = ""
        for peer in PEERS.get(name, ()):
            if peer in best:
                peer_added = best[peer] - base
                note = f"{added / peer_added:.2f}x the peer's added cost ({peer})"
        print(
            f"  {name:44} {value * 1e6:8.1f} {added * 1e6:9.1f} {added / base * 100:7.1f}%  {note}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="per variant per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; {args.rounds} rounds, minimum, interleaved")
    wsgi = {name: wsgi_runner(app, post) for name, (app, post) in wsgi_variants().items()}
    report("WSGI: Flask hello world through werkzeug's test Client", measure(wsgi, args))
    loop = asyncio.new_event_loop()
    try:
        asgi = {name: asgi_runner(loop, app, post) for name, (app, post) in asgi_variants().items()}
        report("ASGI: Starlette hello world through httpx.ASGITransport", measure(asgi, args))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
