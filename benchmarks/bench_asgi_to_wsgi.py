"""AsgiToWsgi against a2wsgi's ASGIMiddleware and the native baseline, in one run.

Each case calls the WSGI app directly (no server, no socket) with a fresh
environ, so the numbers are the adapters' own cost. Cases are interleaved and
repeated; the best of the repeats is kept for each implementation, and ratios
are printed against a2wsgi. Memory: peak RSS growth (VmHWM) of a fresh process
that moves 200 MiB each way through one adapter.

    PYTHONPATH=$PWD python benchmarks/bench_asgi_to_wsgi.py [--seconds 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from a2wsgi import ASGIMiddleware

from bridge import AsgiToWsgi

MiB = 1024 * 1024
BODY_1MIB = b"p" * MiB


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"".join(chunks)})


def environ(method: str = "GET", body: bytes = b"") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def one_request(app: Any, method: str, body: bytes) -> int:
    result = app(environ(method, body), start_response)
    try:
        return sum(len(chunk) for chunk in result)
    finally:
        if hasattr(result, "close"):
            result.close()


class Native:
    """The ASGI app awaited directly on a loop owned by the caller (no thread hand-off)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def __call__(self, env: dict[str, Any], start: Any) -> list[bytes]:
        return self.loop.run_until_complete(self._run(env))

    async def _run(self, env: dict[str, Any]) -> list[bytes]:
        body = env["wsgi.input"].read()
        out: list[bytes] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                out.append(message.get("body", b""))

        await self.app({"type": "http", "headers": []}, receive, send)
        return out


def rate(func: Callable[[], Any], seconds: float, threads: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker() -> None:
        nonlocal done
        count = 0
        while time.perf_counter() < deadline:
            func()
            count += 1
        with lock:
            done += count

    started = time.perf_counter()
    if threads == 1:
        worker()
    else:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(threads):
                pool.submit(worker)
    return done / (time.perf_counter() - started)


def throughput(args: argparse.Namespace) -> None:
    cases = {
        "hello, sequential": (hello, "GET", b"", 1),
        "hello, 8 threads": (hello, "GET", b"", 8),
        "1 MiB POST echo": (echo, "POST", BODY_1MIB, 1),
    }
    makers: dict[str, Callable[[Any], Any]] = {
        "bridge": lambda app: AsgiToWsgi(app, lifespan="off"),
        "a2wsgi": ASGIMiddleware,
        "native": Native,
    }
    print(f"{'case':<20} {'impl':<8} {'req/s':>10} {'vs a2wsgi':>10}")
    for case, (app, method, body, threads) in cases.items():
        best: dict[str, float] = {}
        apps = {name: make(app) for name, make in makers.items()}
        for _ in range(args.repeats):
            for name, wsgi_app in apps.items():  # interleaved
                if name == "native" and threads > 1:
                    continue  # one loop cannot be driven from several threads
                value = rate(partial(one_request, wsgi_app, method, body), args.seconds, threads)
                best[name] = max(best.get(name, 0.0), value)
        for name, value in best.items():
            print(f"{case:<20} {name:<8} {value:>10.0f} {value / best['a2wsgi']:>9.2f}x")


MEMORY_CHILD = """
import io, sys
sys.path.insert(0, {root!r})
from benchmarks.bench_asgi_to_wsgi import measure_memory
measure_memory({impl!r})
"""


def _vmhwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class _Zeros(io.RawIOBase):
    """A 200 MiB request body produced on demand."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return b"\0" * size


async def _sink_and_source(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    block = b"\1" * (64 * 1024)
    for _ in range(200 * MiB // len(block)):
        await send({"type": "http.response.body", "body": block, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def measure_memory(impl: str) -> None:
    app: Any = (
        AsgiToWsgi(_sink_and_source, lifespan="off")
        if impl == "bridge"
        else ASGIMiddleware(_sink_and_source)
    )
    env = environ("POST", b"")
    one_request(app, "GET", b"")  # warm up
    before = _vmhwm()
    env["wsgi.input"] = _Zeros(200 * MiB)
    env["CONTENT_LENGTH"] = str(200 * MiB)
    result = app(env, start_response)
    total = sum(len(chunk) for chunk in result)
    assert total == 200 * MiB, total
    print(f"{(_vmhwm() - before) / MiB:.1f}")


def memory() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    print("\npeak RSS growth, 200 MiB up and 200 MiB down in one request:")
    for impl in ("bridge", "a2wsgi"):
        code = MEMORY_CHILD.format(root=root, impl=impl)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
        )
        print(f"  {impl:<8} {out.stdout.strip() or out.stderr.strip()[-200:]} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    throughput(args)
    if not args.skip_memory:
        memory()


if __name__ == "__main__":
    main()
