"""Benchmark WsgiToAsgi against a2wsgi, asgiref and uvicorn's WSGI adapter.

In-process (asyncio, no sockets): every adapter drives the same WSGI apps; the cases
are interleaved and repeated, and each result is the median of the rounds. Peak
memory for 200 MiB streamed each way is measured in a fresh subprocess per adapter
(RSS sampled every millisecond; disk writes from psutil's io_counters). Loopback:
Flask under uvicorn (httptools) through each adapter vs Flask under gunicorn's sync
worker, with wrk, interleaved.

``--fresh-process`` runs each in-process measurement (one case, one adapter, one round)
in a process of its own, so no adapter inherits another's heap, caches or threads: with
every adapter in one process, the order and the heap state moved a case by up to ±30%.

    PYTHONPATH=$PWD python benchmarks/bench_wsgi_to_asgi.py            # everything
    PYTHONPATH=$PWD python benchmarks/bench_wsgi_to_asgi.py --skip-loopback
    PYTHONPATH=$PWD python benchmarks/bench_wsgi_to_asgi.py --fresh-process --cases POST
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
from flask import Flask
from flask import request as flask_request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import wsgi_to_asgi_apps as apps
from benchmarks._asgi_request import asgi_request
from benchmarks._memory import child_result, peak_growth

MiB = 1024 * 1024


async def throughput(app: Any, count: int, in_flight: int, body: list[bytes] | None) -> float:
    rate, _ = await throughput_and_cpu(app, count, in_flight, body)
    return rate


async def throughput_and_cpu(
    app: Any, count: int, in_flight: int, body: list[bytes] | None
) -> tuple[float, float]:
    """Requests per second, and CPU time per request (all threads, µs).

    One request at a time, each request's wall time also goes into ``LAST_LATENCIES``:
    on a loaded machine the rate (a mean) follows the few requests the scheduler
    preempted for milliseconds, and the median request time is the steadier figure.
    """
    LAST_LATENCIES.clear()

    async def worker(n: int) -> None:
        for _ in range(n):
            started = time.perf_counter()
            await asgi_request(app, body)
            if in_flight == 1:
                LAST_LATENCIES.append(time.perf_counter() - started)

    done = (count // in_flight) * in_flight
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(count // in_flight) for _ in range(in_flight)))
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done * 1e6


# -- uploads read by Flask (issue 17 target 1) -------------------------------------------

uploads = Flask("uploads")


@uploads.post("/")
def upload_size() -> str:
    """The request body read by ``request.get_data()``, or by ``request.stream`` in 64 KiB
    reads (``?stream=1``); answers its size."""
    if flask_request.args.get("stream"):
        size = 0
        while chunk := flask_request.stream.read(65536):
            size += len(chunk)
        return str(size)
    return str(len(flask_request.get_data()))


def flask_get_data(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    return uploads.wsgi_app(environ, start_response)


def flask_stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    environ["QUERY_STRING"] = "stream=1"
    return uploads.wsgi_app(environ, start_response)


KIB64 = [b"p" * 16384] * 4  # 64 KiB in 4 body messages
MIB1 = [b"p" * 65536] * 16  # 1 MiB in 16 body messages

CASES: dict[str, tuple[Callable[..., Any], int, int, list[bytes] | None]] = {
    "hello, sequential": (apps.hello, 2000, 1, None),
    "hello, 64 in flight": (apps.hello, 3200, 64, None),
    "64 KiB in 16 chunks, 64 in flight": (apps.chunks_64k, 1280, 64, None),
    "1 MiB POST echo, 8 in flight": (apps.echo, 160, 8, MIB1),
    "1 MiB POST echo, sequential": (apps.echo, 160, 1, MIB1),
    "64 KiB POST, Flask get_data()": (flask_get_data, 400, 1, KIB64),
    "64 KiB POST, Flask request.stream": (flask_stream, 400, 1, KIB64),
    "1 MiB POST, Flask get_data()": (flask_get_data, 160, 1, MIB1),
    "1 MiB POST, Flask request.stream": (flask_stream, 160, 1, MIB1),
}


CPU: dict[str, dict[str, float]] = {}  # in_process() fills it: case -> adapter -> µs/request
# in_process() fills it for cases run one request at a time: case -> adapter -> median µs
LATENCY: dict[str, dict[str, float]] = {}
LAST_LATENCIES: list[float] = []  # the last sequential run's request wall times (seconds)


def in_process(rounds: int) -> dict[str, dict[str, float]]:
    wrapped = {
        case: {name: make(app) for name, make in apps.ADAPTERS.items()}
        for case, (app, *_rest) in CASES.items()
    }
    results: dict[str, dict[str, list[float]]] = {c: {a: [] for a in apps.ADAPTERS} for c in CASES}
    cpu: dict[str, dict[str, list[float]]] = {c: {a: [] for a in apps.ADAPTERS} for c in CASES}
    latency: dict[str, dict[str, list[float]]] = {c: {a: [] for a in apps.ADAPTERS} for c in CASES}

    async def run() -> None:
        names = list(apps.ADAPTERS)
        for round_number in range(rounds):
            for case, (_app, count, in_flight, body) in CASES.items():
                # rotate the order each round so no adapter always runs first or last
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    rate, us = await throughput_and_cpu(wrapped[case][name], count, in_flight, body)
                    results[case][name].append(rate)
                    cpu[case][name].append(us)
                    if LAST_LATENCIES:
                        latency[case][name].append(statistics.median(LAST_LATENCIES) * 1e6)

    asyncio.run(run())
    CPU.update({c: {a: statistics.median(v) for a, v in r.items()} for c, r in cpu.items()})
    LATENCY.update(
        {c: {a: statistics.median(v) for a, v in r.items() if v} for c, r in latency.items()}
    )
    return {c: {a: statistics.median(v) for a, v in r.items()} for c, r in results.items()}


def in_fresh_processes(rounds: int) -> dict[str, dict[str, float]]:
    """:func:`in_process`'s figures, each measured in a fresh process (``--fresh-process``)."""
    names = list(apps.ADAPTERS)
    results: dict[str, dict[str, list[float]]] = {c: {a: [] for a in names} for c in CASES}
    cpu: dict[str, dict[str, list[float]]] = {c: {a: [] for a in names} for c in CASES}
    latency: dict[str, dict[str, list[float]]] = {c: {a: [] for a in names} for c in CASES}
    for round_number in range(rounds):
        for case in CASES:
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                argv = [sys.executable, os.path.abspath(__file__), "--case-child", case, name]
                done = subprocess.run(argv, capture_output=True, text=True, check=True)
                rate, us, median = json.loads(done.stdout.strip().splitlines()[-1])
                results[case][name].append(rate)
                cpu[case][name].append(us)
                if median is not None:
                    latency[case][name].append(median)
    CPU.update({c: {a: statistics.median(v) for a, v in r.items()} for c, r in cpu.items()})
    LATENCY.update(
        {c: {a: statistics.median(v) for a, v in r.items() if v} for c, r in latency.items()}
    )
    return {c: {a: statistics.median(v) for a, v in r.items()} for c, r in results.items()}


def case_child(case: str, adapter: str) -> None:
    """One case through one adapter in this process, after a warm-up; prints its figures
    as JSON: requests per second, CPU µs per request, median request µs (or null), each
    the median of three batches (one batch is a fraction of a second: a preemption moves
    it by tens of percent)."""
    app, count, in_flight, body = CASES[case]
    wrapped = apps.ADAPTERS[adapter](app)
    rates: list[float] = []
    cpus: list[float] = []
    latencies: list[float] = []

    async def run() -> None:
        await throughput_and_cpu(wrapped, max(in_flight, count // 10), in_flight, body)
        for _ in range(3):
            rate, us = await throughput_and_cpu(wrapped, count, in_flight, body)
            rates.append(rate)
            cpus.append(us)
            latencies.extend(LAST_LATENCIES)

    asyncio.run(run())
    median = statistics.median(latencies) * 1e6 if latencies else None
    print(json.dumps([statistics.median(rates), statistics.median(cpus), median]))


# -- trio: only bridge runs there -----------------------------------------------------------


def on_backend(backend: str, rounds: int) -> dict[str, float]:
    """bridge alone, the same cases, driven through anyio on ``backend``."""
    import anyio

    from bridge import WsgiToAsgi

    results: dict[str, list[float]] = {case: [] for case in CASES}

    async def run() -> None:
        for _ in range(rounds):
            for case, (app, count, in_flight, body) in CASES.items():
                adapter = WsgiToAsgi(app)

                async def worker(n: int, adapter: Any = adapter, body: Any = body) -> None:
                    for _ in range(n):
                        await asgi_request(adapter, body, anyio.Event)

                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(in_flight):
                        tg.start_soon(worker, count // in_flight)
                elapsed = time.perf_counter() - start
                results[case].append((count // in_flight) * in_flight / elapsed)

    anyio.run(run, backend=backend)
    return {case: statistics.median(rates) for case, rates in results.items()}


# -- memory: one subprocess per adapter and direction -------------------------------------


def memory_child(adapter: str, direction: str) -> None:
    wsgi = apps.download_200m if direction == "download" else apps.upload_200m
    app = apps.ADAPTERS[adapter](wsgi)
    process = psutil.Process()
    body = [b"u" * 65536] * (200 * 16) if direction == "upload" else None
    warm_up = apps.ADAPTERS[adapter](apps.echo)  # threads, imports, allocator arenas
    asyncio.run(asgi_request(warm_up, [b"u" * 65536] * 16))
    writes = process.io_counters().write_bytes
    growth, received, _ = peak_growth(lambda: asyncio.run(asgi_request(app, body)))
    written = process.io_counters().write_bytes - writes
    print(json.dumps({"growth": growth, "written": written, "received": received}))


def memory(adapter: str, direction: str) -> dict[str, Any]:
    return child_result(__file__, adapter, direction, timeout=300)


# -- loopback: Flask under servers, driven by wrk ----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def server_argv(name: str, port: int) -> list[str]:
    if name == "gunicorn sync":
        return [
            sys.executable, "-m", "gunicorn", "benchmarks.wsgi_to_asgi_apps:flask_app",
            "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "sync", "--log-level", "warning",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", f"benchmarks.wsgi_to_asgi_apps:flask_{name}",
        "--host", "127.0.0.1", "--port", str(port), "--http", "httptools",
        "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def wrk(port: int, seconds: int, connections: int) -> tuple[float, int]:
    """Requests per second and the number of non-2xx/3xx responses."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None:
        raise RuntimeError(f"wrk failed:\n{out}")
    total = re.search(r"(\d+) requests in", out)
    bad = int(errors.group(1)) if errors else 0
    if bad and total:
        print(f"    note: {bad} of {total.group(1)} responses were errors (port {port})")
    return float(match.group(1)), bad


def loopback(rounds: int, seconds: int, connections: int) -> dict[str, float]:
    """Successful requests per second, median over interleaved rounds."""
    names = ["bridge", "uvicorn", "a2wsgi", "asgiref", "gunicorn sync"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    results: dict[str, list[float]] = {n: [] for n in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            port = free_port()
            proc = subprocess.Popen(
                server_argv(name, port),
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # asgiref's adapter logs a traceback per failure
            )
            try:
                wait_for(port)
                wrk(port, 1, connections)  # warm up
                rate, bad = wrk(port, seconds, connections)
                if bad:
                    print(f"    {name}: {bad} error responses in {seconds}s")
                results[name].append(rate - bad / seconds)
            finally:
                proc.terminate()
                proc.wait(10)
    return {n: statistics.median(v) for n, v in results.items()}


# -- report ----------------------------------------------------------------------------


def report_rates(title: str, rates: dict[str, float], reference: str = "bridge") -> None:
    print(f"  {title}")
    for name, rate in rates.items():
        ratio = rates[reference] / rate if rate else float("inf")
        note = "" if name == reference else f"   bridge is {ratio:.2f}x"
        print(f"    {name:14} {rate:10.0f} req/s{note}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", help="only the cases whose name contains this text")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-trio", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-loopback", action="store_true")
    parser.add_argument("--wrk-seconds", type=int, default=3)
    parser.add_argument("--wrk-connections", type=int, default=8)
    parser.add_argument(
        "--fresh-process",
        action="store_true",
        help="run each in-process measurement (case, adapter, round) in a fresh process",
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("ADAPTER", "DIRECTION"))
    parser.add_argument("--case-child", nargs=2, metavar=("CASE", "ADAPTER"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.case_child:
        case_child(*args.case_child)
        return
    if args.cases:
        for case in [c for c in CASES if args.cases not in c]:
            del CASES[case]
    if not args.skip_in_process:
        fresh = " (each measurement in a fresh process)" if args.fresh_process else ""
        print(f"in-process, asyncio, median of {args.rounds} interleaved rounds{fresh}")
        measured = in_fresh_processes if args.fresh_process else in_process
        for case, rates in measured(args.rounds).items():
            report_rates(case, rates)
            cpu = "   ".join(f"{name} {us:.0f}" for name, us in CPU[case].items())
            print(f"    CPU µs/request: {cpu}")
            if LATENCY.get(case):
                wall = "   ".join(f"{name} {us:.0f}" for name, us in LATENCY[case].items())
                print(f"    median wall µs/request: {wall}")
    if not args.skip_trio:
        print("bridge alone through anyio's harness, asyncio vs trio (no peer runs on trio)")
        on_asyncio, on_trio = on_backend("asyncio", args.rounds), on_backend("trio", args.rounds)
        for case in CASES:
            print(f"  {case:36} asyncio {on_asyncio[case]:8.0f}   trio {on_trio[case]:8.0f} req/s")
    if not args.skip_memory:
        print("peak RSS growth streaming 200 MiB (fresh process per adapter)")
        for direction in ("download", "upload"):
            for name in apps.ADAPTERS:
                m = memory(name, direction)
                print(
                    f"  {direction:8} {name:10} {m['growth'] / MiB:8.1f} MiB"
                    f"   written to disk {m['written'] / MiB:6.1f} MiB"
                )
    if not args.skip_loopback:
        if shutil.which("wrk") is None:
            print("wrk not installed; loopback benchmark skipped")
            return
        print(
            f"loopback: Flask hello, wrk -t1 -c{args.wrk_connections} -d{args.wrk_seconds}s, "
            f"median of {args.rounds} interleaved rounds; ASGI adapters under uvicorn "
            "(httptools, uvloop, 1 process)"
        )
        report_rates("Flask", loopback(args.rounds, args.wrk_seconds, args.wrk_connections))


if __name__ == "__main__":
    main()
