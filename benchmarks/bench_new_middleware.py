"""Added cost per request of CORS, TrustedHost, HTTPSRedirect, RequestId and Compression,
against the peers they replace, in the same run.

Peers: Starlette's CORSMiddleware, TrustedHostMiddleware, HTTPSRedirectMiddleware and
GZipMiddleware, asgi-correlation-id's CorrelationIdMiddleware (ASGI); flask-cors and
flask-compress (Flask extensions, so only around the Flask app). Three sections:

* **direct**: each app called in-process with a prepared environ / scope (a bare hello
  world and a framework hello world: Flask under WSGI, Starlette under ASGI);
* **clients**: Flask through werkzeug's test ``Client``, Starlette through
  ``httpx.AsyncClient`` over ``httpx.ASGITransport``;
* **compression**: a 1 KiB and a 1 MiB text response, gzip only, level 6 everywhere
  (Starlette's default is 9): bytes out, MiB/s of body in, added µs; and the peak RSS
  growth while 200 MiB stream through Compression (a child process each).

Every request carries an allowed Origin, an allowed Host and ``Accept-Encoding: gzip``
over https, so each middleware does its pass-through work; the HTTPSRedirect rows also
time the redirect itself (a plain-http request, answered without the app). Variants run
interleaved (shuffled each round) and repeated; the minimum of the rounds is reported
(the steadiest figure on a shared machine) with the cost added over the bare app and
its ratio to the peer's added cost.

    PYTHONPATH=$PWD python benchmarks/bench_new_middleware.py [--rounds 7] [--seconds 0.2]
    PYTHONPATH=$PWD python benchmarks/bench_new_middleware.py --clock cpu  # steadier when busy
    PYTHONPATH=$PWD python benchmarks/bench_new_middleware.py --only memory

``--instructions NAME KIND N`` only runs N direct calls of one variant (``"bridge CORS"``,
``"Starlette CORSMiddleware"``, ... on the bare app; KIND ``wsgi`` or ``asgi``), untimed, for an
instruction count that does not depend on the machine's load: the count of N=2000 minus the
count of N=1000, divided by 1000, is one request's instructions::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/bench_new_middleware.py --instructions "bridge CORS" asgi 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
from asgi_correlation_id import CorrelationIdMiddleware
from flask import Flask
from flask_compress import Compress
from flask_cors import CORS as FlaskCORS
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from benchmarks._memory import child_result, peak_growth
from bridge import CORS, Compression, HTTPSRedirect, RequestId, TrustedHost
from bridge._http.translate import environ_from_scope
from bridge.testing import Request

ORIGIN = "https://site.example"
HOST = "api.example"
HEADERS = [
    (b"host", HOST.encode()),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"origin", ORIGIN.encode()),
    (b"accept-encoding", b"gzip"),
]
HTTPS = Request(headers=HEADERS, scheme="https", server=(HOST, 443))
PLAIN_HTTP = Request(headers=HEADERS, scheme="http", server=(HOST, 80))
LEVEL = 6
SIZES = {"1 KiB": 1024, "1 MiB": 1024 * 1024}
MiB = 1024 * 1024
#: The clock the batches are timed with: wall time, or (``--clock cpu``) this process's CPU
#: time, which other processes on a busy machine disturb far less. Every request here runs
#: on the calling thread, so the CPU time is the request's cost.
CLOCK: list[Callable[[], float]] = [time.perf_counter]

CORS_OPTIONS: dict[str, Any] = {"allow_origins": [ORIGIN], "allow_methods": ["GET", "POST"]}
HOSTS = [HOST, "www.api.example"]

# name -> (wrap an ASGI app, wrap a WSGI app or None, the peer it is compared with)
Wrap = Callable[[Any], Any]


def _flask_cors(app: Flask) -> Any:
    FlaskCORS(app, origins=[ORIGIN], methods=["GET", "POST"])
    return app.wsgi_app


def _flask_compress(app: Flask) -> Any:
    app.config.update(COMPRESS_ALGORITHM=["gzip"], COMPRESS_LEVEL=LEVEL)
    Compress(app)
    return app.wsgi_app


#: name -> (wrap a WSGI app, or None), (wrap an ASGI app, or None), request
VARIANTS: dict[str, tuple[Wrap | None, Wrap | None, Request]] = {
    "bare": (lambda app: app, lambda app: app, HTTPS),
    "bridge CORS": (
        lambda app: CORS(app, **CORS_OPTIONS),
        lambda app: CORS(app, **CORS_OPTIONS),
        HTTPS,
    ),
    "Starlette CORSMiddleware": (None, lambda app: CORSMiddleware(app, **CORS_OPTIONS), HTTPS),
    "bridge TrustedHost": (
        lambda app: TrustedHost(app, allowed_hosts=HOSTS),
        lambda app: TrustedHost(app, allowed_hosts=HOSTS),
        HTTPS,
    ),
    "Starlette TrustedHostMiddleware": (
        None,
        lambda app: TrustedHostMiddleware(app, allowed_hosts=HOSTS),
        HTTPS,
    ),
    "bridge HTTPSRedirect": (HTTPSRedirect, HTTPSRedirect, HTTPS),
    "Starlette HTTPSRedirectMiddleware": (None, HTTPSRedirectMiddleware, HTTPS),
    "bridge HTTPSRedirect, redirect": (HTTPSRedirect, HTTPSRedirect, PLAIN_HTTP),
    "Starlette HTTPSRedirectMiddleware, redirect": (None, HTTPSRedirectMiddleware, PLAIN_HTTP),
    "bridge RequestId": (RequestId, RequestId, HTTPS),
    "asgi-correlation-id": (None, CorrelationIdMiddleware, HTTPS),
    "bridge Compression": (
        lambda app: Compression(app, gzip_level=LEVEL),
        lambda app: Compression(app, gzip_level=LEVEL),
        HTTPS,
    ),
    "Starlette GZipMiddleware": (
        None,
        lambda app: GZipMiddleware(app, compresslevel=LEVEL),
        HTTPS,
    ),
}
#: Peers that change a Flask app rather than wrap a WSGI callable.
FLASK_EXTENSIONS: dict[str, tuple[Callable[[Flask], Any], Request]] = {
    "flask-cors": (_flask_cors, HTTPS),
    "flask-compress": (_flask_compress, HTTPS),
}
PEERS = {
    "bridge CORS": ("flask-cors", "Starlette CORSMiddleware"),
    "bridge TrustedHost": ("Starlette TrustedHostMiddleware",),
    "bridge HTTPSRedirect": ("Starlette HTTPSRedirectMiddleware",),
    "bridge HTTPSRedirect, redirect": ("Starlette HTTPSRedirectMiddleware, redirect",),
    "bridge RequestId": ("asgi-correlation-id",),
    "bridge Compression": ("flask-compress", "Starlette GZipMiddleware"),
}


# -- apps --------------------------------------------------------------------------


def wsgi_text(body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def flask_text(body: bytes) -> Flask:
    app = Flask("bench")
    app.add_url_rule("/", "index", lambda: (body, {"Content-Type": "text/plain"}))
    return app


def asgi_text(body: bytes) -> Any:
    length = b"%d" % len(body)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Fresh messages each time: a middleware may change the ones it is given.
        headers = [(b"content-type", b"text/plain"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def starlette_text(body: bytes) -> Starlette:
    async def index(request: Any) -> PlainTextResponse:
        # async: a sync endpoint would run in a worker thread, whose hand-off (50-100 us,
        # and most of the noise on a busy machine) would swamp what the middleware add.
        return PlainTextResponse(body)

    return Starlette(routes=[Route("/", index)])


# -- direct calls ------------------------------------------------------------------


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def wsgi_runner(app: Any, request: Request) -> Callable[[int], float]:
    base = environ_from_scope(request.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    del base["asgi.scope"]

    def run(n: int) -> float:
        start = CLOCK[0]()
        for _ in range(n):
            body = app(dict(base), _start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return (CLOCK[0]() - start) / n

    return run


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def asgi_runner(
    loop: asyncio.AbstractEventLoop, app: Any, request: Request
) -> Callable[[int], float]:
    base = request.scope()

    async def batch(n: int) -> float:
        start = CLOCK[0]()
        for _ in range(n):
            await app(dict(base), _receive, _send)
        return (CLOCK[0]() - start) / n

    return lambda n: loop.run_until_complete(batch(n))


def direct_runners(
    kind: str, body: bytes, loop: asyncio.AbstractEventLoop, names: Iterable[str]
) -> dict[tuple[str, str], Callable[[int], float]]:
    """(base app, variant) -> runner, for the variants in ``names`` that apply."""
    runners: dict[tuple[str, str], Callable[[int], float]] = {}
    for name in names:
        wrap_wsgi, wrap_asgi, request = VARIANTS.get(name, (None, None, HTTPS))
        if kind == "wsgi":
            if wrap_wsgi is not None:
                runners[("bare WSGI", name)] = wsgi_runner(wrap_wsgi(wsgi_text(body)), request)
                runners[("Flask", name)] = wsgi_runner(
                    wrap_wsgi(flask_text(body).wsgi_app), request
                )
            elif name in FLASK_EXTENSIONS:
                extend, request = FLASK_EXTENSIONS[name]
                runners[("Flask", name)] = wsgi_runner(extend(flask_text(body)), request)
        elif wrap_asgi is not None:
            runners[("bare ASGI", name)] = asgi_runner(loop, wrap_asgi(asgi_text(body)), request)
            runners[("Starlette", name)] = asgi_runner(
                loop, wrap_asgi(starlette_text(body)), request
            )
    return runners


# -- through in-process clients ----------------------------------------------------


def _request_headers(request: Request) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in request.headers if k != b"host"}


def client_wsgi_runner(app: Any, request: Request) -> Callable[[int], float]:
    client = Client(app)
    base_url = f"{request.scheme}://{HOST}"
    headers = _request_headers(request)

    def run(n: int) -> float:
        start = CLOCK[0]()
        for _ in range(n):
            response = client.get("/", base_url=base_url, headers=headers)
            response.close()
            if response.status_code >= 400:
                raise RuntimeError(f"{response.status_code} from a benchmark request")
        return (CLOCK[0]() - start) / n

    return run


def client_asgi_runner(
    loop: asyncio.AbstractEventLoop, app: Any, request: Request
) -> Callable[[int], float]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    client = httpx.AsyncClient(transport=transport, base_url=f"{request.scheme}://{HOST}")
    headers = _request_headers(request)

    async def batch(n: int) -> float:
        start = CLOCK[0]()
        for _ in range(n):
            response = await client.get("/", headers=headers)
            if response.status_code >= 400:
                raise RuntimeError(f"{response.status_code} from a benchmark request")
        return (CLOCK[0]() - start) / n

    return lambda n: loop.run_until_complete(batch(n))


def client_runners(
    kind: str, loop: asyncio.AbstractEventLoop
) -> dict[tuple[str, str], Callable[[int], float]]:
    runners: dict[tuple[str, str], Callable[[int], float]] = {}
    for name, (wrap_wsgi, wrap_asgi, request) in VARIANTS.items():
        if kind == "wsgi" and wrap_wsgi is not None:
            app = wrap_wsgi(flask_text(b"hello").wsgi_app)
            runners[("Flask, werkzeug Client", name)] = client_wsgi_runner(app, request)
        elif kind == "asgi" and wrap_asgi is not None:
            app = wrap_asgi(starlette_text(b"hello"))
            runners[("Starlette, httpx", name)] = client_asgi_runner(loop, app, request)
    if kind == "wsgi":
        for name, (extend, request) in FLASK_EXTENSIONS.items():
            app = extend(flask_text(b"hello"))
            runners[("Flask, werkzeug Client", name)] = client_wsgi_runner(app, request)
    return runners


# -- timing and report -------------------------------------------------------------


def calibrate(run: Callable[[int], float], seconds: float) -> int:
    """A batch size taking about ``seconds``."""
    run(20)  # warm up: imports, caches, first-request work
    return max(20, int(seconds / run(50)))


def measure(runners: dict[Any, Callable[[int], float]], args: Any) -> dict[Any, float]:
    sizes = {key: calibrate(run, args.seconds) for key, run in runners.items()}
    samples: dict[Any, list[float]] = {key: [] for key in runners}
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        order = list(runners)
        rng.shuffle(order)
        for key in order:
            samples[key].append(runners[key](sizes[key]))
    return {key: min(values) for key, values in samples.items()}


def report(title: str, best: dict[tuple[str, str], float]) -> None:
    print(f"\n== {title}")
    for base in dict.fromkeys(b for b, _ in best):
        bare = best[(base, "bare")]
        print(f"\n  app: {base}  bare = {bare * 1e6:7.2f} us/request")
        print(f"  {'middleware':44} {'us/req':>8} {'added us':>9} {'added %':>8}  vs peer")
        for (b, name), value in best.items():
            if b != base or name == "bare":
                continue
            added = value - bare
            notes = []
            for peer in PEERS.get(name, ()):
                if (base, peer) in best:
                    peer_added = best[(base, peer)] - bare
                    ratio = value / best[(base, peer)]
                    share = f"{added / peer_added:.2f}x added" if peer_added > 0 else "peer ~0"
                    notes.append(f"{ratio:.2f}x total, {share} ({peer})")
            print(
                f"  {name:44} {value * 1e6:8.2f} {added * 1e6:9.2f} {added / bare * 100:7.1f}%  "
                f"{'; '.join(notes)}"
            )


# -- compression: bytes, MiB/s, added us ---------------------------------------------

COMPRESSION_NAMES = ("bare", "bridge Compression", "flask-compress", "Starlette GZipMiddleware")


def text_body(size: int) -> bytes:
    """Compressible text, not trivially so (a 64-byte period would flatter every coder)."""
    rng = random.Random(size)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(400)
    ]
    out = io.StringIO()
    while out.tell() < size:
        out.write(rng.choice(words) + (" " if rng.random() < 0.9 else "\n"))
    return out.getvalue()[:size].encode()


def _bytes_out_wsgi(app: Any, request: Request) -> bytes:
    environ = environ_from_scope(request.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    body = app(environ, _start_response)
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


def _bytes_out_asgi(app: Any, request: Request) -> bytes:
    out: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    asyncio.run(app(request.scope(), _receive, send))
    return b"".join(out)


def compression_section(args: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        for label, size in SIZES.items():
            body = text_body(size)
            for kind in ("wsgi", "asgi"):
                runners = direct_runners(kind, body, loop, COMPRESSION_NAMES)
                best = measure(runners, args)
                print(f"\n== compression, {label} text response, {kind.upper()}, direct call")
                print(
                    f"  {'app / middleware':52} {'bytes out':>9} {'us/req':>9} "
                    f"{'added us':>9} {'MiB/s in':>9}"
                )
                for (base, name), value in best.items():
                    out = _sample_output(kind, base, name, body)
                    if out[:2] == b"\x1f\x8b" and gzip.decompress(out) != body:
                        raise RuntimeError(f"{name} did not round-trip")
                    added = value - best[(base, "bare")]
                    print(
                        f"  {base + ' / ' + name:52} {len(out):9d} {value * 1e6:9.1f} "
                        f"{added * 1e6:9.1f} {size / value / MiB:9.1f}"
                    )
    finally:
        loop.close()


def _sample_output(kind: str, base: str, name: str, body: bytes) -> bytes:
    wrap_wsgi, wrap_asgi, request = VARIANTS.get(name, (None, None, HTTPS))
    if kind == "wsgi":
        if name in FLASK_EXTENSIONS:
            return _bytes_out_wsgi(FLASK_EXTENSIONS[name][0](flask_text(body)), request)
        assert wrap_wsgi is not None
        inner = wsgi_text(body) if base == "bare WSGI" else flask_text(body).wsgi_app
        return _bytes_out_wsgi(wrap_wsgi(inner), request)
    assert wrap_asgi is not None
    inner = asgi_text(body) if base == "bare ASGI" else starlette_text(body)
    return _bytes_out_asgi(wrap_asgi(inner), request)


# -- memory: 200 MiB streamed through Compression ---------------------------------------

STREAM_CHUNK = 64 * 1024
STREAM_TOTAL = 200 * MiB


def _stream_chunks() -> Iterator[bytes]:
    chunk = text_body(STREAM_CHUNK)
    for _ in range(STREAM_TOTAL // STREAM_CHUNK):
        yield chunk


def _wsgi_stream(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _stream_chunks()


async def _asgi_stream(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for chunk in _stream_chunks():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def memory_child(contender: str, interface: str) -> None:
    counted = [0]

    def wsgi() -> int:
        app = Compression(_wsgi_stream, gzip_level=LEVEL)
        environ = environ_from_scope(HTTPS.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
        body = app(environ, _start_response)
        for chunk in body:
            counted[0] += len(chunk)
        getattr(body, "close", lambda: None)()
        return counted[0]

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            counted[0] += len(message.get("body", b""))

    def asgi() -> int:
        if contender == "bridge":
            app: Any = Compression(_asgi_stream, gzip_level=LEVEL)
        else:
            app = GZipMiddleware(_asgi_stream, compresslevel=LEVEL)
        asyncio.run(app(HTTPS.scope(), _receive, send))
        return counted[0]

    text_body(STREAM_CHUNK)  # warm the allocator before the baseline
    growth, out, hwm = peak_growth(wsgi if interface == "wsgi" else asgi)
    print(json.dumps({"growth": growth, "bytes_out": out, "hwm": hwm}))


def memory_section() -> None:
    print(f"\n== memory: {STREAM_TOTAL // MiB} MiB streamed in 64 KiB chunks, peak RSS growth")
    for contender, interface in (("bridge", "wsgi"), ("bridge", "asgi"), ("starlette", "asgi")):
        result = child_result(__file__, contender, interface, timeout=600)
        print(
            f"  {contender:10} {interface:5} {result['growth'] / MiB:6.2f} MiB "
            f"({result['bytes_out'] / MiB:.1f} MiB out; kernel high-water mark: {result['hwm']})"
        )


def instructions_run(name: str, kind: str, count: str) -> None:
    """``count`` untimed direct calls of variant ``name`` around the bare ``kind`` app."""
    loop = asyncio.new_event_loop()
    try:
        runners = direct_runners(kind, b"hello", loop, ["bare", name])
        run = runners[(f"bare {kind.upper()}", name)]
        run(200)  # warm: imports, caches, first-request work
        run(int(count))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="per batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--only", choices=["direct", "clients", "compression", "memory"], action="append"
    )
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall", help="cpu: time.process_time"
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("CONTENDER", "INTERFACE"))
    parser.add_argument("--instructions", nargs=3, metavar=("NAME", "KIND", "N"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.instructions:
        instructions_run(*args.instructions)
        return
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    only = set(args.only or ("direct", "clients", "compression", "memory"))
    print(
        f"python {sys.version.split()[0]}; batches of ~{args.seconds}s, {args.clock} clock, "
        "interleaved, min of rounds"
    )
    loop = asyncio.new_event_loop()
    try:
        if "direct" in only:
            for kind in ("wsgi", "asgi"):
                runners = direct_runners(kind, b"hello", loop, [*VARIANTS, *FLASK_EXTENSIONS])
                report(f"{kind.upper()}, direct call, hello world", measure(runners, args))
        if "clients" in only:
            for kind in ("wsgi", "asgi"):
                best = measure(client_runners(kind, loop), args)
                report(f"{kind.upper()}, through an in-process client, hello world", best)
    finally:
        loop.close()
    if "compression" in only:
        compression_section(args)
    if "memory" in only:
        memory_section()


if __name__ == "__main__":
    main()
