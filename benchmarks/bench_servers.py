"""Whole requests through real servers over loopback, driven by wrk: req/s and server CPU.

Four groups, each started at once (one server process per configuration, 1 worker,
127.0.0.1), warmed up, then measured in rounds; each round runs every configuration of
the group once, in a fresh random order, for ``--seconds`` of ``wrk -t1 -c8``:

* ``wsgi-to-asgi`` (issue 17, target 2): Flask hello under uvicorn through
  ``bridge.WsgiToAsgi``, under uvicorn through uvicorn's own adapter
  (``uvicorn.middleware.wsgi._WSGIMiddleware``; ``--interface wsgi`` would pick a2wsgi,
  which is installed) and under gunicorn's sync worker;
* ``asgi-to-wsgi`` (target 3): FastAPI hello under gunicorn ``-k gthread`` through
  ``bridge.AsgiToWsgi`` and through a2wsgi's ``ASGIMiddleware``, native Flask under the same
  gunicorn, and the FastAPI app under uvicorn natively;
* ``asgi-middleware`` and ``wsgi-middleware`` (target 4): Starlette hello under uvicorn and
  Flask hello under gunicorn gthread, bare and with each of bridge's middleware and each
  peer. Every request carries ``Origin``, ``Accept-Encoding: gzip`` and
  ``X-Forwarded-For``/``-Proto`` so every middleware does its pass-through work; neither
  server applies forwarded headers itself (``--no-proxy-headers``, gunicorn's
  ``--forwarded-allow-ips`` set to an address nobody uses), so HTTPSRedirect answers
  every request with its redirect, without the app.

uvicorn runs with httptools and uvloop. For every run the script records wrk's req/s, the
**server's CPU time per request** (utime+stime from ``/proc/<pid>/stat`` of the server
process and its children, gunicorn's worker included, summed over the run and divided by
the requests wrk completed) and the server's context switches per request (voluntary and
not, all threads, from ``/proc/<pid>/task/*/status``). Reported: medians over the rounds
and ratios between configurations of the same run.

**CPUs.** With two or more CPUs the servers run on one CPU and wrk on another
(``--cpus SERVER,CLIENT``, default ``1,0``; ``--cpus none`` lets the scheduler choose). A
one-worker server then meets what a one-worker-per-core deployment meets. Unpinned, a
threaded server (gunicorn gthread, an adapter's worker thread beside uvicorn's loop)
switches between two behaviours from run to run: its threads either share one CPU, or
spread over both and pass the GIL between CPUs, which costs 2-3x the CPU per request
(gthread + Flask hello measured 230-280 against 640 µs, 0.8 against 17 context switches
per request, on the same machine within minutes). Pinned, CPU per request holds still
where req/s swings by tens of percent.

    PYTHONPATH=$PWD python benchmarks/bench_servers.py --runs 5
    PYTHONPATH=$PWD python benchmarks/bench_servers.py --runs 5 --only wsgi-to-asgi asgi-to-wsgi
    PYTHONPATH=$PWD python benchmarks/bench_servers.py --profile benchmarks/profiles \\
        --only wsgi-to-asgi          # a py-spy flame graph per server under load
    PYTHONPATH=$PWD python benchmarks/bench_servers.py --smoke   # one short run of each

Needs ``wrk`` on PATH (and ``py-spy`` for ``--profile``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.server_apps import ASGI_PEERS, BRIDGE_MIDDLEWARE, WSGI_PEERS  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 8
GTHREADS = 8
#: Sent with every middleware request so each middleware does its pass-through work.
MIDDLEWARE_HEADERS = [
    "Origin: https://site.example",
    "Accept-Encoding: gzip",
    "X-Forwarded-For: 203.0.113.9",
    "X-Forwarded-Proto: https",
]


@dataclass
class Config:
    label: str
    server: str  # "uvicorn", "gunicorn sync" or "gunicorn gthread"
    variant: str  # a name in benchmarks.server_apps.VARIANTS
    headers: list[str] = field(default_factory=list)


@dataclass
class Sample:
    rate: float  # requests per second, wrk's figure
    cpu_us: float  # server CPU µs per request
    switches: float  # server context switches per request (all threads)
    bad: int  # responses outside 2xx/3xx


#: (server CPU, client CPU) that the servers and wrk are pinned to; None: unpinned.
pinning: tuple[int, int] | None = None


def pinned_to(cpu: int | None) -> Any:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None when not pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def groups() -> dict[str, list[Config]]:
    h = MIDDLEWARE_HEADERS
    gthread = "gunicorn gthread"
    asgi = [Config("bare", "uvicorn", "starlette", h)]
    asgi += [
        Config(f"bridge {n}", "uvicorn", f"starlette + bridge {n}", h) for n in BRIDGE_MIDDLEWARE
    ]
    asgi += [Config(n, "uvicorn", f"starlette + {n}", h) for n in ASGI_PEERS]
    wsgi = [Config("bare", "gunicorn gthread", "flask", h)]
    wsgi += [
        Config(f"bridge {n}", "gunicorn gthread", f"flask + bridge {n}", h)
        for n in BRIDGE_MIDDLEWARE
    ]
    wsgi += [Config(n, "gunicorn gthread", f"flask + {n}", h) for n in WSGI_PEERS]
    return {
        "wsgi-to-asgi": [
            Config("uvicorn + bridge WsgiToAsgi", "uvicorn", "flask via bridge WsgiToAsgi"),
            Config("uvicorn + uvicorn's WSGI adapter", "uvicorn", "flask via uvicorn's adapter"),
            Config("gunicorn sync", "gunicorn sync", "flask"),
        ],
        "asgi-to-wsgi": [
            Config("gthread + bridge AsgiToWsgi", gthread, "fastapi via bridge AsgiToWsgi"),
            Config("gthread + a2wsgi", gthread, "fastapi via a2wsgi"),
            Config("gthread + native Flask", gthread, "flask"),
            Config("uvicorn + FastAPI natively", "uvicorn", "fastapi"),
        ],
        "asgi-middleware": asgi,
        "wsgi-middleware": wsgi,
    }  # fmt: skip


#: the peer each bridge middleware is compared with, per group
PEERS = {
    "asgi-middleware": {f"bridge {b}": p for p, (b, _) in ASGI_PEERS.items()},
    "wsgi-middleware": {f"bridge {b}": p for p, (b, _) in WSGI_PEERS.items()},
}


# -- servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_argv(server: str, port: int) -> list[str]:
    target = "benchmarks.server_apps:app"
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--http", "httptools", "--loop", "uvloop", "--log-level", "warning",
            "--no-access-log", "--no-proxy-headers",
        ]  # fmt: skip
    worker = server.split()[1]
    return [
        sys.executable, "-m", "gunicorn", target, "-b", f"127.0.0.1:{port}", "-w", "1",
        "-k", worker, "--threads", str(GTHREADS), "--log-level", "warning",
        "--forwarded-allow-ips", "192.0.2.1",
    ]  # fmt: skip


@dataclass
class Server:
    config: Config
    port: int
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, config: Config) -> Server:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": ROOT, "BENCH_APP": config.variant}
        proc = subprocess.Popen(
            server_argv(config.server, port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            # a2wsgi's loop thread complains at exit ("Task was destroyed but it is
            # pending!"): kept out of the report, shown if the server fails to start.
            stderr=tempfile.TemporaryFile(),  # noqa: SIM115 - lives as long as the server
            preexec_fn=pinned_to(pinning and pinning[0]),
        )
        return cls(config, port, proc)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.config.label} exited with {self.proc.returncode}:\n{self.stderr()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.config.label}: nothing listening on {self.port}")

    def stderr(self) -> str:
        log: Any = self.proc.stderr
        log.seek(0)
        return log.read().decode(errors="replace")[-4000:]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's master and its worker)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its descendants, all threads included."""
    total = 0
    for each in process_tree(pid):
        try:
            with open(f"/proc/{each}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of ``pid``'s tree."""
    total = 0
    for each in process_tree(pid):
        try:
            tasks = os.listdir(f"/proc/{each}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{each}/task/{task}/status") as f:
                    status = f.read()
            except OSError:
                continue
            total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    return total


# -- wrk ------------------------------------------------------------------------------


def wrk(server: Server, seconds: float) -> tuple[float, int, int]:
    """Requests per second, requests completed, and responses outside 2xx/3xx."""
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s"]
    for header in server.config.headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{server.port}/")
    out = subprocess.run(
        argv,
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=pinned_to(pinning and pinning[1]),
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None or total is None:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(rate.group(1)), int(total.group(1)), int(bad.group(1)) if bad else 0


def measure(server: Server, seconds: float) -> Sample:
    pid = server.proc.pid
    before, switched = cpu_seconds(pid), context_switches(pid)
    rate, requests, bad = wrk(server, seconds)
    used, switched = cpu_seconds(pid) - before, context_switches(pid) - switched
    requests = max(requests, 1)
    return Sample(rate, used / requests * 1e6, switched / requests, bad)


def profile(server: Server, seconds: float, directory: str) -> None:
    """A py-spy flame graph of ``server`` while wrk drives it (threads shown apart)."""
    slug = re.sub(r"[^a-z0-9]+", "-", server.config.label.lower()).strip("-")
    svg = os.path.join(directory, f"{slug}.svg")
    argv = [
        "py-spy", "record", "--pid", str(server.proc.pid), "--subprocesses",
        "--threads", "--duration", str(int(seconds)), "--rate", "250",
        "--output", svg, "--nonblocking",
    ]  # fmt: skip
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches
    wrk(server, seconds)
    spy.wait(60)
    print(f"  profile of {server.config.label}: {svg}")


# -- a group --------------------------------------------------------------------------


def run_group(configs: list[Config], runs: int, seconds: float) -> dict[str, list[Sample]]:
    servers = [Server.start(c) for c in configs]
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:
            wrk(server, 1)  # warm up: imports, first-request work, caches
        samples: dict[str, list[Sample]] = {c.label: [] for c in configs}
        for _ in range(runs):
            for server in random.sample(servers, len(servers)):
                samples[server.config.label].append(measure(server, seconds))
        return samples
    finally:
        for server in servers:
            server.stop()


def profile_group(configs: list[Config], seconds: float, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    servers = [Server.start(c) for c in configs]
    try:
        for server in servers:
            server.wait_ready()
            wrk(server, 1)
        for server in servers:
            profile(server, seconds, directory)
    finally:
        for server in servers:
            server.stop()


# -- report ---------------------------------------------------------------------------


def medians(samples: list[Sample]) -> tuple[float, float, float, int]:
    rate = statistics.median(s.rate for s in samples)
    cpu = statistics.median(s.cpu_us for s in samples)
    switches = statistics.median(s.switches for s in samples)
    return rate, cpu, switches, sum(s.bad for s in samples)


def report_adapters(samples: dict[str, list[Sample]]) -> None:
    first = next(iter(samples))
    rate0, cpu0, _, _ = medians(samples[first])
    print(
        f"  {'configuration':36} {'req/s':>8} {'ratio':>7} {'CPU µs/req':>11} {'ratio':>7}"
        f" {'switches/req':>13}"
    )
    for label, runs in samples.items():
        rate, cpu, switches, bad = medians(runs)
        note = f"   ({bad} error responses)" if bad else ""
        print(
            f"  {label:36} {rate:8.0f} {rate0 / rate:6.2f}x {cpu:11.1f} {cpu0 / cpu:6.2f}x"
            f" {switches:13.2f}{note}"
        )
    print(f"  (ratios: {first} over each; above 1 means it is faster / uses less CPU)")


def report_middleware(samples: dict[str, list[Sample]], peers: dict[str, str]) -> None:
    rate0, cpu0, _, _ = medians(samples["bare"])
    print(f"  bare: {rate0:.0f} req/s, {cpu0:.1f} CPU µs/req")
    print(f"  {'middleware':38} {'req/s':>8} {'CPU µs/req':>11} {'added':>7} {'% bare':>7}  peer")
    added = {label: medians(runs)[1] - cpu0 for label, runs in samples.items()}
    for label, runs in samples.items():
        if label == "bare":
            continue
        rate, cpu, _, bad = medians(runs)
        peer = peers.get(label)
        versus = ""
        if peer is not None:
            versus = f"  {peer}: {added[peer]:+.1f}"
        note = f"   ({bad} non-2xx/3xx)" if bad else ""
        print(
            f"  {label:38} {rate:8.0f} {cpu:11.1f} {added[label]:+7.1f} "
            f"{added[label] / cpu0 * 100:+6.1f}%{versus}{note}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3, help="wrk duration (default 3)")
    parser.add_argument("--only", nargs="+", choices=list(groups()), help="groups to run")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy flame graphs instead")
    parser.add_argument("--smoke", action="store_true", help="one 1-second run of each")
    parser.add_argument(
        "--cpus",
        default="1,0" if (os.cpu_count() or 1) >= 2 else "none",
        help="SERVER,CLIENT: the CPUs servers and wrk are pinned to, or 'none' (default 1,0)",
    )
    args = parser.parse_args()
    global pinning
    if args.cpus != "none":
        server_cpu, client_cpu = (int(n) for n in args.cpus.split(","))
        pinning = (server_cpu, client_cpu)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")
    if args.smoke:
        args.runs, args.seconds = 1, 1
    chosen = {name: c for name, c in groups().items() if not args.only or name in args.only}
    load = os.getloadavg()[0]
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"load {load:.1f}; wrk -t1 -c{CONNECTIONS} -d{args.seconds:g}s, "
        f"median of {args.runs} interleaved runs; "
        + ("unpinned" if pinning is None else f"server on CPU {pinning[0]}, wrk on {pinning[1]}")
    )
    for name, configs in chosen.items():
        if args.profile:
            profile_group(configs, args.seconds, args.profile)
            continue
        print(f"{name}:")
        samples = run_group(configs, args.runs, args.seconds)
        if name in PEERS:
            report_middleware(samples, PEERS[name])
        else:
            report_adapters(samples)


if __name__ == "__main__":
    main()
