"""Added cost per request of bridge's middleware, against the peers they replace.

Each middleware wraps an in-process hello world (a bare app and a framework app:
Flask under WSGI, Starlette under ASGI); the request carries X-Forwarded-For /
-Proto from 127.0.0.1 so every proxy middleware does its work. RequestBuffering
(defaults; the request is a GET without a body) and RateLimit (a MemoryStore and
a limit never reached) have no peer here. Variants run interleaved (shuffled each
round) and repeated; the median (or ``--stat min``) per-request time of each is
reported with the cost it adds over the bare app and the ratio of that added cost
to the peer's. ``--json FILE`` also writes every sample, so runs of two checkouts
(``PYTHONPATH`` pointing at each in turn) can be compared.

    PYTHONPATH=$PWD python benchmarks/bench_middleware.py [--rounds 7] [--seconds 0.3]

``--instructions NAME KIND N`` only runs N untimed calls of one variant (``"bridge
ProxyHeaders"``, ``"uvicorn ProxyHeadersMiddleware"``, ``"bare"`` ...) around the bare
``KIND`` (``wsgi`` or ``asgi``) app, for an instruction count that does not depend on the
machine's load: the count of N=3000 minus the count of N=1000, divided by 2000, is one
request's instructions (``PYTHONHASHSEED=0`` keeps the runs alike)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
        python benchmarks/bench_middleware.py --instructions "bridge ProxyHeaders" asgi 3000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import io
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from secure.middleware import SecureASGIMiddleware, SecureWSGIMiddleware
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from benchmarks._peers import SAME_AS_SECURE, SECURE
from bridge import ProxyHeaders, RateLimit, RequestBuffering, SecurityHeaders

try:
    from bridge import CustomHeaders
except ImportError:  # a checkout from before the rename (compare_middleware.py)
    from bridge import Headers as CustomHeaders  # type: ignore[attr-defined,no-redef]
from bridge.testing import Request

try:
    from bridge._http.translate import environ_from_scope
except ImportError:  # a checkout from before the layered folders, measured for comparison
    from bridge._translate import environ_from_scope  # type: ignore[import-not-found,no-redef]

REQUEST = Request(
    headers=[
        (b"host", b"example.com"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"),
    ],
    client=("127.0.0.1", 50000),
)


# -- apps ------------------------------------------------------------------------


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def flask_hello() -> Any:
    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: "hello")
    return app.wsgi_app


async def asgi_hello(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


def starlette_hello() -> Any:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])


NEVER_REACHED = "1000000000/minute"

WSGI_VARIANTS: dict[str, Callable[[Any], Any]] = {
    "bare": lambda app: app,
    "bridge ProxyHeaders": lambda app: ProxyHeaders(app),
    "werkzeug ProxyFix": lambda app: ProxyFix(app, x_for=1, x_proto=1),
    "bridge SecurityHeaders": lambda app: SecurityHeaders(app, **SAME_AS_SECURE),
    "secure SecureWSGIMiddleware": lambda app: SecureWSGIMiddleware(app, secure=SECURE),
    "bridge CustomHeaders": lambda app: CustomHeaders(
        app, set_response={"cache-control": "no-store"}
    ),
    "bridge RequestBuffering": lambda app: RequestBuffering(app),
    "bridge RateLimit": lambda app: RateLimit(app, limit=NEVER_REACHED),
}
ASGI_VARIANTS: dict[str, Callable[[Any], Any]] = {
    "bare": lambda app: app,
    "bridge ProxyHeaders": lambda app: ProxyHeaders(app),
    "uvicorn ProxyHeadersMiddleware": lambda app: ProxyHeadersMiddleware(app, "127.0.0.1"),
    "bridge SecurityHeaders": lambda app: SecurityHeaders(app, **SAME_AS_SECURE),
    "secure SecureASGIMiddleware": lambda app: SecureASGIMiddleware(app, secure=SECURE),
    "bridge CustomHeaders": lambda app: CustomHeaders(
        app, set_response={"cache-control": "no-store"}
    ),
    "bridge RequestBuffering": lambda app: RequestBuffering(app),
    "bridge RateLimit": lambda app: RateLimit(app, limit=NEVER_REACHED),
}
PEERS = {
    "bridge ProxyHeaders": ("werkzeug ProxyFix", "uvicorn ProxyHeadersMiddleware"),
    "bridge SecurityHeaders": ("secure SecureWSGIMiddleware", "secure SecureASGIMiddleware"),
}


# -- timing ------------------------------------------------------------------------


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def wsgi_batch(app: Any, n: int, request: Request = REQUEST) -> float:
    base = environ_from_scope(request.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    del base["asgi.scope"]
    start = time.perf_counter()
    for _ in range(n):
        body = app(dict(base), _start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - start) / n


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def asgi_batch(app: Any, n: int, request: Request = REQUEST) -> float:
    base = request.scope()
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(base), _receive, _send)
    return (time.perf_counter() - start) / n


def _run_asgi(
    loop: asyncio.AbstractEventLoop, app: Any, n: int, request: Request = REQUEST
) -> float:
    return loop.run_until_complete(asgi_batch(app, n, request))


def calibrate(run: Callable[[int], float], seconds: float) -> int:
    """A batch size taking about ``seconds``."""
    per_request = run(200)
    return max(200, int(seconds / per_request))


def measure(
    kind: str, bases: dict[str, Any], variants: dict[str, Callable[[Any], Any]], args: Any
) -> dict[tuple[str, str], list[float]]:
    loop = asyncio.new_event_loop()
    runners: dict[tuple[str, str], Callable[[int], float]] = {}
    for base_name, base_app in bases.items():
        for name, wrap in variants.items():
            runners[(base_name, name)] = functools.partial(
                wsgi_batch if kind == "wsgi" else functools.partial(_run_asgi, loop),
                wrap(base_app),
            )
    sizes = {key: calibrate(run, args.seconds) for key, run in runners.items()}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        order = list(runners)
        rng.shuffle(order)
        for key in order:
            samples[key].append(runners[key](sizes[key]))
    loop.close()
    return samples


def report(kind: str, samples: dict[tuple[str, str], list[float]], stat: str) -> None:
    pick = min if stat == "min" else statistics.median
    medians = {key: pick(values) for key, values in samples.items()}
    print(f"\n== {kind.upper()} ({stat} of {len(next(iter(samples.values())))} rounds)")
    bases = sorted({base for base, _ in medians})
    for base in bases:
        bare = medians[(base, "bare")]
        print(f"\n  app: {base}  bare = {bare * 1e6:7.2f} us/request")
        print(f"  {'middleware':34} {'us/req':>8} {'added us':>9} {'added %':>8}  vs peer")
        for (b, name), value in medians.items():
            if b != base or name == "bare":
                continue
            added = value - bare
            peer_note = ""
            for peer in PEERS.get(name, ()):
                if (base, peer) in medians:
                    peer_added = medians[(base, peer)] - bare
                    peer_note = (
                        f"{value / medians[(base, peer)]:.2f}x total, "
                        f"{added / peer_added:.2f}x added ({peer})"
                        if peer_added > 0
                        else f"peer adds nothing measurable ({peer})"
                    )
            print(
                f"  {name:34} {value * 1e6:8.2f} {added * 1e6:9.2f} {added / bare * 100:7.1f}%  "
                f"{peer_note}"
            )


def instructions_run(name: str, kind: str, count: str) -> None:
    """``count`` untimed calls of variant ``name`` around the bare ``kind`` app.

    The objects alive after the warm-up are frozen out of the garbage collector, so a
    full collection (its cost depends on what the imports left, not on the request)
    does not land in one count and not the other."""
    if kind == "wsgi":
        app = WSGI_VARIANTS[name](wsgi_hello)
        wsgi_batch(app, 200)  # warm: imports, caches, first-request work
        gc.freeze()
        wsgi_batch(app, int(count))
        return
    app = ASGI_VARIANTS[name](asgi_hello)
    loop = asyncio.new_event_loop()
    try:
        _run_asgi(loop, app, 200)
        gc.freeze()
        _run_asgi(loop, app, int(count))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="per batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="min is steadier on a shared machine (it drops rounds another process slowed)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write every sample (µs) to FILE, for comparisons"
    )
    parser.add_argument("--instructions", nargs=3, metavar=("NAME", "KIND", "N"))
    args = parser.parse_args()
    if args.instructions:
        instructions_run(*args.instructions)
        return
    print(f"python {sys.version.split()[0]}; batches of ~{args.seconds}s, interleaved, shuffled")
    wsgi = measure(
        "wsgi", {"bare WSGI hello": wsgi_hello, "Flask hello": flask_hello()}, WSGI_VARIANTS, args
    )
    report("wsgi", wsgi, args.stat)
    asgi = measure(
        "asgi",
        {"bare ASGI hello": asgi_hello, "Starlette hello": starlette_hello()},
        ASGI_VARIANTS,
        args,
    )
    report("asgi", asgi, args.stat)
    if args.json:
        samples = {**wsgi, **asgi}
        with open(args.json, "w") as out:
            json.dump(
                [[app, name, [v * 1e6 for v in values]] for (app, name), values in samples.items()],
                out,
            )


if __name__ == "__main__":
    main()
