"""RequestBuffering against Starlette's body-size limit, in process, in one run.

Two measurements, every variant interleaved (shuffled each round) and repeated;
medians are reported:

* small bodies (a 100-byte POST with Content-Length): the cost each limiter adds to
  an in-process hello world that reads its body: a bare ASGI app, a Starlette app,
  and (WSGI side, no Starlette peer there) a bare WSGI app and a Flask app;
* 10 MiB bodies in 64 KiB chunks: throughput in MiB/s through each limiter into an
  app that reads the whole body, with bridge in "stream" mode, in "buffer" mode
  spooling to disk past 1 MiB, and buffering in memory.

    PYTHONPATH=$PWD python benchmarks/bench_buffering.py [--rounds 7] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge import RequestBuffering, ResponseBuffering, WsgiToAsgi
from bridge._http.translate import environ_from_scope
from bridge.testing import Request

MiB = 1024 * 1024
LIMIT = 16 * MiB
SMALL = Request(method="POST", body=b"x" * 100)
LARGE_CHUNK = b"y" * 65536
LARGE_CHUNKS = 160  # 10 MiB

# -- apps that read their body -------------------------------------------------------


async def asgi_hello(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def asgi_collect(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body into one bytes object, as a framework's ``body()`` does."""
    parts = []
    more = True
    while more:
        message = await receive()
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(parts)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def starlette_endpoint(request: StarletteRequest) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("hello")


def starlette_hello() -> Any:
    return Starlette(routes=[Route("/", starlette_endpoint, methods=["POST"])])


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    while length > 0:
        length -= len(stream.read(min(length, 65536)))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def flask_hello() -> Any:
    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: str(len(flask_request.get_data())), methods=["POST"])
    return app.wsgi_app


# -- one request -------------------------------------------------------------------------


async def _ignore(message: Any) -> None:
    return None


def small_asgi(app: Any) -> Callable[[], Awaitable[None]]:
    scope = dict(SMALL.scope())
    message = {"type": "http.request", "body": b"x" * 100, "more_body": False}

    async def one() -> None:
        sent = False

        async def receive() -> Any:
            nonlocal sent
            if sent:  # like a server: nothing more until the client goes away
                await asyncio.sleep(3600)
            sent = True
            return message

        await app(dict(scope), receive, _ignore)

    return one


def large_asgi(app: Any) -> Callable[[], Awaitable[None]]:
    request = Request(method="POST", body=b"", chunked=True)
    scope = dict(request.scope())

    async def one() -> None:
        sent = 0

        async def receive() -> Any:
            nonlocal sent
            sent += 1
            return {"type": "http.request", "body": LARGE_CHUNK, "more_body": sent < LARGE_CHUNKS}

        await app(dict(scope), receive, _ignore)

    return one


#: Keeps the socket a "gunicorn" environ carries open for the whole run.
_SOCKETS = socket.socketpair()


def small_wsgi(app: Any, server: str = "other") -> Callable[[], None]:
    """``server``: "gunicorn" (a socket in the environ), "waitress", "file" (the body
    behind a buffered reader, like wsgiref's socket file: timed reads need a thread)
    or "other" (the body in an ``io.BytesIO``, which a read cannot wait on)."""
    base = environ_from_scope(SMALL.scope(), wsgi_input=None, wsgi_errors=sys.stderr)
    if server == "gunicorn":
        base["gunicorn.socket"] = _SOCKETS[0]
    elif server == "waitress":
        base["waitress.client_disconnected"] = lambda: False
    body = b"x" * 100

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def one() -> None:
        environ = dict(base)
        stream = io.BytesIO(body)
        environ["wsgi.input"] = io.BufferedReader(stream) if server == "file" else stream
        iterable = app(environ, start_response)
        for _ in iterable:
            pass
        close = getattr(iterable, "close", None)
        if close is not None:
            close()

    return one


# -- timing ------------------------------------------------------------------------------


async def time_async(call: Callable[[], Awaitable[None]], seconds: float) -> float:
    """Seconds per call, running ``call`` repeatedly for about ``seconds``."""
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            await call()
        count += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / count


def time_sync(call: Callable[[], None], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            call()
        count += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / count


def run(
    variants: dict[str, Callable[[], Any]], is_async: bool, rounds: int, seconds: float
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        names = list(variants)
        random.shuffle(names)
        for name in names:
            if is_async:
                samples[name].append(asyncio.run(time_async(variants[name], seconds)))
            else:
                samples[name].append(time_sync(variants[name], seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def report_small(title: str, results: dict[str, float], bare: str, peer: str | None) -> None:
    print(f"\n{title}")
    base = results[bare]
    peer_cost = None if peer is None else results[peer] - base
    for name, value in results.items():
        added = value - base
        line = f"  {name:<38} {value * 1e6:8.2f} us/request"
        if name != bare:
            line += f"  +{added * 1e6:6.2f} us ({added / base:+7.1%} of {bare})"
            if peer_cost is not None and name != peer and peer_cost > 0:
                line += f"  {added / peer_cost:5.2f}x Starlette's added cost"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()

    asgi_apps = (
        ("bare ASGI app", asgi_hello),
        ("Starlette app", starlette_hello()),
        ("Flask through WsgiToAsgi", WsgiToAsgi(flask_hello())),
    )
    for label, inner in asgi_apps:
        variants = {
            label: small_asgi(inner),
            "+ Starlette RequestBodyLimitMiddleware": small_asgi(
                RequestBodyLimitMiddleware(inner, max_body_size=LIMIT)
            ),
            "+ bridge RequestBuffering (buffer)": small_asgi(
                RequestBuffering(inner, max_body_size=LIMIT)
            ),
            "+ bridge RequestBuffering (stream)": small_asgi(
                RequestBuffering(inner, max_body_size=LIMIT, mode="stream")
            ),
            "+ bridge RequestBuffering (buffer, no timeout)": small_asgi(
                RequestBuffering(inner, max_body_size=LIMIT, body_timeout=None)
            ),
        }
        results = run(variants, True, args.rounds, args.seconds)
        report_small(
            f"ASGI, 100-byte POST, {label}",
            results,
            label,
            "+ Starlette RequestBodyLimitMiddleware",
        )

    for label, wsgi_inner in (("bare WSGI app", wsgi_hello), ("Flask app", flask_hello())):
        buffered = RequestBuffering(wsgi_inner, max_body_size=LIMIT)
        streamed = RequestBuffering(wsgi_inner, max_body_size=LIMIT, mode="stream")
        wsgi_variants = {
            label: small_wsgi(wsgi_inner),
            "+ buffer, timeout in a thread": small_wsgi(buffered, "file"),
            "+ buffer, body in a BytesIO": small_wsgi(buffered),
            "+ buffer, gunicorn socket timeout": small_wsgi(buffered, "gunicorn"),
            "+ buffer, under waitress": small_wsgi(buffered, "waitress"),
            "+ stream, gunicorn socket timeout": small_wsgi(streamed, "gunicorn"),
            "+ buffer, no timeout": small_wsgi(
                RequestBuffering(wsgi_inner, max_body_size=LIMIT, body_timeout=None)
            ),
        }
        results = run(wsgi_variants, False, args.rounds, args.seconds)
        report_small(
            f"WSGI, 100-byte POST, {label} (no Starlette peer under WSGI)", results, label, None
        )

    response_variants = {
        "bare ASGI app (GET)": small_asgi(asgi_hello),
        "+ bridge ResponseBuffering": small_asgi(ResponseBuffering(asgi_hello)),
        "Flask through WsgiToAsgi (GET)": small_asgi(WsgiToAsgi(flask_hello())),
        "+ bridge ResponseBuffering around it": small_asgi(
            ResponseBuffering(WsgiToAsgi(flask_hello()))
        ),
    }
    results = run(response_variants, True, args.rounds, args.seconds)
    print("\nASGI, ResponseBuffering of a 5-byte response")
    for name, value in results.items():
        print(f"  {name:<38} {value * 1e6:8.2f} us/request")

    app = asgi_collect
    large = {
        "bare ASGI app": large_asgi(app),
        "Starlette RequestBodyLimitMiddleware": large_asgi(
            RequestBodyLimitMiddleware(app, max_body_size=LIMIT)
        ),
        "bridge stream": large_asgi(RequestBuffering(app, max_body_size=LIMIT, mode="stream")),
        "bridge stream, no timeout": large_asgi(
            RequestBuffering(app, max_body_size=LIMIT, mode="stream", body_timeout=None)
        ),
        "bridge buffer, memory 1 MiB + disk": large_asgi(
            RequestBuffering(app, max_body_size=LIMIT)
        ),
        "bridge buffer, all in memory": large_asgi(
            RequestBuffering(app, max_body_size=LIMIT, memory_size=LIMIT)
        ),
    }
    results = run(large, True, max(3, args.rounds // 2), args.seconds * 2)
    print("\nASGI, 10 MiB chunked POST (160 x 64 KiB) into an app that joins it, throughput")
    peer = results["Starlette RequestBodyLimitMiddleware"]
    for name, value in results.items():
        print(f"  {name:<38} {10 / value:9.0f} MiB/s  {peer / value:5.2f}x Starlette's throughput")


if __name__ == "__main__":
    main()
