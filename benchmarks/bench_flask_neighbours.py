"""Why bridge's middleware add more time around Flask than around a bare app.

The first section times Flask from inside (a shim around ``wsgi_app`` that also keeps
``start_response`` out of the measurement), called directly and through bridge's
Compression / CORS around it: the same environ, the same code, only the neighbours differ.

Then Flask's hello world, called directly in a loop, is timed alone and with other work run
beside it on every request (before the call; the place makes no difference): a request
through bridge's Compression or CORS around a *bare* app (not around Flask), a few stdlib
calls, and a C-level walk over 128 KiB of memory that runs no Python code at all. Each
neighbour is also timed alone. "interaction" is how much more the pair costs than its two
parts: time that neither spends alone, which is the cost of sharing the CPU's caches
(the pair's working set no longer fits where each one's did).

Run pinned: ``taskset -c 1 python benchmarks/bench_flask_neighbours.py``. CPU clock, min of
rounds, variants interleaved.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import urllib.parse
import wsgiref.headers
import wsgiref.util
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from bridge import CORS, Compression
from bridge._http.translate import environ_from_scope
from bridge.testing import Request

ORIGIN = "https://site.example"
HEADERS = [
    (b"host", b"api.example"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"origin", ORIGIN.encode()),
    (b"accept-encoding", b"gzip"),
]
BASE = environ_from_scope(
    Request(headers=HEADERS, scheme="https", server=("api.example", 443)).scope(),
    wsgi_input=io.BytesIO(),
    wsgi_errors=sys.stderr,
)
del BASE["asgi.scope"]
CLOCK = time.process_time


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def bare(environ: Any, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def flask_app() -> Flask:
    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: (b"hello", {"Content-Type": "text/plain"}))
    return app


def serve(app: Any, environ: dict[str, Any]) -> None:
    body = app(environ, _start_response)
    for _chunk in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _stdlib(environ: dict[str, Any]) -> None:
    uri = wsgiref.util.request_uri(environ)
    urllib.parse.parse_qsl("a=1&b=2&c=%20x")
    urllib.parse.urlsplit(uri)
    lines = wsgiref.headers.Headers([("Content-Type", "text/plain"), ("X-A", "b")])
    lines.add_header("Vary", "Accept-Encoding")
    lines.get("content-type")
    str(lines)


_MEMORY = memoryview(bytearray(2048 * 64))[::64]  # one byte per cache line of 128 KiB


def neighbours() -> dict[str, Callable[[dict[str, Any]], None]]:
    compression = Compression(bare, gzip_level=6)
    cors = CORS(bare, allow_origins=[ORIGIN], allow_methods=["GET", "POST"])
    return {
        "nothing": lambda environ: None,
        "bridge Compression around a bare app": lambda environ: serve(compression, environ),
        "bridge CORS around a bare app": lambda environ: serve(cors, environ),
        "stdlib calls (wsgiref, urllib.parse)": _stdlib,
        "a C walk over 128 KiB (no Python)": lambda environ: _MEMORY.tobytes() and None,
    }


def best_of(runners: dict[Any, Callable[[int], float]], rounds: int) -> dict[Any, float]:
    for run in runners.values():
        run(300)
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for key, run in runners.items():
            best[key] = min(best[key], run(2000))
    return best


def pair_section(rounds: int) -> None:
    flask = flask_app().wsgi_app

    def runner(beside: Callable[[dict[str, Any]], None], with_flask: bool) -> Any:
        def run(n: int) -> float:
            start = CLOCK()
            for _ in range(n):
                beside(dict(BASE))
                if with_flask:
                    serve(flask, dict(BASE))
            return (CLOCK() - start) / n

        return run

    found = neighbours()
    runners = {(name, f): runner(beside, f) for name, beside in found.items() for f in (0, 1)}
    best = best_of(runners, rounds)
    alone = best[("nothing", 1)] - best[("nothing", 0)]
    print(f"\n== Flask hello world beside other work, µs per request (Flask: {alone * 1e6:.1f})")
    for name in found:
        if name == "nothing":
            continue
        own, pair = best[(name, 0)], best[(name, 1)]
        print(
            f"  {name:40} alone {own * 1e6:6.2f}  with Flask {pair * 1e6:6.2f}  "
            f"interaction {(pair - own - alone) * 1e6:+6.2f}"
        )


class _Inside:
    """Times the app it wraps, without ``start_response`` (called after the clock stops)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        held: list[tuple[Any, ...]] = []
        start = CLOCK()
        body: Iterable[bytes] = self.app(environ, lambda *args: held.append(args))
        self.seconds += CLOCK() - start
        start_response(*held[0])
        return body


def inside_section(rounds: int) -> None:
    wraps: dict[str, Callable[[Any], Any]] = {
        "called directly": lambda app: app,
        "through bridge Compression": lambda app: Compression(app, gzip_level=6),
        "through bridge CORS": lambda app: CORS(app, allow_origins=[ORIGIN]),
    }
    shims = {name: _Inside(flask_app().wsgi_app) for name in wraps}
    apps = {name: wrap(shims[name]) for name, wrap in wraps.items()}

    def runner(name: str) -> Callable[[int], float]:
        def run(n: int) -> float:
            shims[name].seconds = 0.0
            for _ in range(n):
                serve(apps[name], dict(BASE))
            return shims[name].seconds / n

        return run

    best = best_of({name: runner(name) for name in wraps}, rounds)
    print("\n== Flask's own time per request (inside wsgi_app, start_response excluded), µs")
    for name, seconds in best.items():
        print(f"  {name:30} {seconds * 1e6:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; CPU clock, min of {args.rounds} rounds of 2000")
    inside_section(args.rounds)  # first: after the pairs, Flask's heap is laid out differently
    pair_section(args.rounds)


if __name__ == "__main__":
    main()
