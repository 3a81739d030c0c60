"""Benchmark AsgiToWsgi against a2wsgi's ASGIMiddleware and the native ASGI app.

In-process, no sockets: every contender serves the same plain ASGI apps, driven
the way a WSGI server would (a fresh environ per request, iterate the response,
``close()`` it). The native baseline awaits the ASGI app directly on one asyncio
loop with in-memory ``receive``/``send`` (for the threaded case, as many
concurrent tasks as there are threads). Cases are interleaved, the order rotates
each round, and each figure is the median of the rounds.

Memory: peak RSS growth while 200 MiB stream through each contender in each
direction, in a fresh subprocess per contender and direction (peak from the
kernel's VmHWM, reset after a warm-up, and RSS sampled every millisecond).

    PYTHONPATH=$PWD python benchmarks/bench_asgi_to_wsgi.py              # everything
    PYTHONPATH=$PWD python benchmarks/bench_asgi_to_wsgi.py --rounds 7 --skip-memory

bridge runs with ``lifespan="off"`` (a2wsgi never runs lifespan) on its default
asyncio loop; ``bridge-trio`` is the same adapter on the trio loop. Each request-body
chunk costs bridge a round trip between the WSGI thread and the loop;
``--bridge-chunk-size 1048577`` shows the echo cases with the whole body in one chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.util import setup_testing_defaults

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from a2wsgi import ASGIMiddleware

from benchmarks._asgi_request import asgi_request
from benchmarks._memory import child_result, peak_growth
from bridge import AsgiToWsgi

MiB = 1024 * 1024
CHUNK = 64 * 1024
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

# -- the ASGI apps ---------------------------------------------------------------------

HELLO = b"Hello, world!"
HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def hello(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers with it in one message (what most apps do)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    headers = [(b"content-type", b"application/octet-stream")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo_streamed(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Sends each body chunk back as it arrives (a proxy, a transcoder)."""
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
        await send(
            {"type": "http.response.body", "body": message.get("body", b""), "more_body": more}
        )


def download(size: int) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        block = b"d" * CHUNK
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(size // CHUNK):
            await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def upload(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Reads and counts the body without keeping it."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


# -- contenders ------------------------------------------------------------------------

BRIDGE_OPTIONS: dict[str, Any] = {"lifespan": "off"}
CONTENDERS: dict[str, Callable[[Any], Any]] = {
    "bridge": lambda app: AsgiToWsgi(app, **BRIDGE_OPTIONS),
    "bridge-trio": lambda app: AsgiToWsgi(app, **BRIDGE_OPTIONS, backend="trio"),
    "a2wsgi": lambda app: ASGIMiddleware(app),
}


class Zeros(io.RawIOBase):
    """A ``wsgi.input`` of ``size`` bytes that keeps nothing in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = b"u" * CHUNK

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= wanted
        return self.block[:wanted] if wanted <= CHUNK else b"u" * wanted


def environ(method: str = "GET", body: bytes | None = None, stream: Any = None) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": "/", "SERVER_PORT": "8000"}
    setup_testing_defaults(env)
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(body))
        env["wsgi.input"] = io.BytesIO(body)
    elif stream is not None:
        env["CONTENT_LENGTH"] = str(stream.left)
        env["wsgi.input"] = stream
    return env


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_request(app: Any, env: dict[str, Any]) -> int:
    result: Iterable[bytes] = app(env, start_response)
    received = 0
    try:
        for chunk in result:
            received += len(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return received


def wsgi_rate(app: Any, count: int, threads: int, body: bytes | None) -> float:
    method = "GET" if body is None else "POST"

    def worker(n: int) -> None:
        for _ in range(n):
            wsgi_request(app, environ(method, body))

    per_thread = count // threads
    start = time.perf_counter()
    if threads == 1:
        worker(per_thread)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(worker, [per_thread] * threads))
    return per_thread * threads / (time.perf_counter() - start)


async def native_request(app: Any, body: bytes | None) -> int:
    chunks = None if body is None else [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    return await asgi_request(app, chunks)


def native_rate(app: Any, count: int, in_flight: int, body: bytes | None) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await native_request(app, body)

    async def run() -> float:
        per_task = count // in_flight
        start = time.perf_counter()
        await asyncio.gather(*(worker(per_task) for _ in range(in_flight)))
        return per_task * in_flight / (time.perf_counter() - start)

    return asyncio.run(run())


# -- in-process throughput ---------------------------------------------------------------

ONE_MIB = os.urandom(MiB)
CASES: dict[str, tuple[Any, int, int, bytes | None]] = {
    "hello, sequential": (hello, 2000, 1, None),
    "hello, 8 threads": (hello, 4000, 8, None),
    "1 MiB POST echo, sequential": (echo, 200, 1, ONE_MIB),
    "1 MiB POST echo, 8 threads": (echo, 320, 8, ONE_MIB),
    "1 MiB POST echoed chunk by chunk, sequential": (echo_streamed, 200, 1, ONE_MIB),
}


def in_process(rounds: int, contenders: list[str]) -> dict[str, dict[str, float]]:
    wrapped = {
        case: {name: CONTENDERS[name](app) for name in contenders}
        for case, (app, *_rest) in CASES.items()
    }
    names = [*contenders, "native"]
    results: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CASES}
    for case, (_app, _count, threads, body) in CASES.items():  # warm up loops, threads, imports
        for name in contenders:
            wsgi_rate(wrapped[case][name], threads * 4, threads, body)
    for round_number in range(rounds):
        for case, (app, count, threads, body) in CASES.items():
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                if name == "native":
                    rate = native_rate(app, count, threads, body)
                else:
                    rate = wsgi_rate(wrapped[case][name], count, threads, body)
                results[case][name].append(rate)
    for adapters in wrapped.values():
        for adapter in adapters.values():
            getattr(adapter, "close", lambda: None)()
    return {c: {n: statistics.median(v) for n, v in r.items()} for c, r in results.items()}


# -- memory: one subprocess per contender and direction ------------------------------------


def memory_child(name: str, direction: str, size: int) -> None:
    app = download(size) if direction == "download" else upload
    if name == "native":
        run: Callable[[], int] = lambda: asyncio.run(  # noqa: E731
            native_request(app, None) if direction == "download" else _native_upload(app, size)
        )
        asyncio.run(native_request(echo, ONE_MIB))
    else:
        adapter = CONTENDERS[name](app)
        warm = CONTENDERS[name](echo)
        wsgi_request(warm, environ("POST", ONE_MIB))
        wsgi_request(adapter, environ("POST", stream=Zeros(4 * MiB)))

        def run() -> int:
            stream = Zeros(size) if direction == "upload" else None
            return wsgi_request(adapter, environ("POST" if stream else "GET", stream=stream))

    growth, received, hwm = peak_growth(run)
    print(json.dumps({"growth": growth, "received": received, "hwm": hwm}))


async def _native_upload(app: Any, size: int) -> int:
    left = size
    block = b"u" * CHUNK

    async def receive() -> Message:
        nonlocal left
        part = min(CHUNK, left)
        left -= part
        return {"type": "http.request", "body": block[:part], "more_body": left > 0}

    async def send(message: Message) -> None:
        return None

    await app({"type": "http", "method": "POST", "path": "/", "headers": []}, receive, send)
    return size


def memory(name: str, direction: str, size: int) -> dict[str, Any]:
    return child_result(__file__, name, direction, str(size), timeout=600)


# -- report --------------------------------------------------------------------------------


def report(case: str, rates: dict[str, float]) -> None:
    bridge = rates["bridge"]
    print(f"  {case}")
    for name, rate in rates.items():
        note = "" if name == "bridge" else f"   bridge / {name} = {bridge / rate:.2f}x"
        print(f"    {name:12} {rate:9.0f} req/s{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--no-trio", action="store_true", help="leave bridge-trio out")
    parser.add_argument("--memory-mib", type=int, default=200)
    parser.add_argument(
        "--bridge-chunk-size",
        type=int,
        default=None,
        help="AsgiToWsgi(chunk_size=...) for bridge (default: its own default, 64 KiB)",
    )
    parser.add_argument("--memory-child", nargs=3, metavar=("NAME", "DIRECTION", "SIZE"))
    args = parser.parse_args()
    if args.bridge_chunk_size:
        BRIDGE_OPTIONS["chunk_size"] = args.bridge_chunk_size
    if args.memory_child:
        name, direction, size = args.memory_child
        memory_child(name, direction, int(size))
        return
    contenders = [n for n in CONTENDERS if not (args.no_trio and n == "bridge-trio")]
    if not args.skip_in_process:
        print(f"in-process, median of {args.rounds} interleaved rounds (order rotates)")
        for case, rates in in_process(args.rounds, contenders).items():
            report(case, rates)
    if not args.skip_memory:
        size = args.memory_mib * MiB
        print(f"peak RSS growth streaming {args.memory_mib} MiB (fresh process each)")
        for direction in ("download", "upload"):
            for name in [*contenders, "native"]:
                m = memory(name, direction, size)
                assert m["received"] in (size, len(str(size))), m
                print(f"  {direction:8} {name:12} {m['growth'] / MiB:7.2f} MiB")


if __name__ == "__main__":
    main()
