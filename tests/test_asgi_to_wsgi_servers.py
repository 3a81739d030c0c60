"""AsgiToWsgi under real WSGI servers (waitress, gunicorn sync/gthread/--preload), on loopback."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import psutil
import pytest

from .conftest import PYTHON, RunServer, Server, free_port, start_server

pytestmark = pytest.mark.server

APP = "tests.apps.fastapi_app:application"
MiB = 1024 * 1024


def gunicorn(*options: str) -> Callable[[int], Sequence[str]]:
    def argv(port: int) -> Sequence[str]:
        return [PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5",
                *options, APP]  # fmt: skip

    return argv


def waitress(port: int) -> Sequence[str]:
    return [PYTHON, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=8", APP]


SERVERS = {
    "waitress": waitress,
    "gunicorn-sync": gunicorn("-w", "2", "-k", "sync"),
    "gunicorn-gthread": gunicorn("-w", "2", "-k", "gthread", "--threads", "8"),
    "gunicorn-preload": gunicorn("-w", "2", "-k", "gthread", "--threads", "4", "--preload"),
    "gunicorn-trio": gunicorn("-w", "1", "-k", "gthread", "--threads", "4"),
}


@pytest.fixture
def run_server() -> Iterator[RunServer]:
    """Like conftest's ``run_server``, but also closes the server's output pipe.

    (conftest's fixture leaves ``proc.stdout`` open, which warnings-as-errors
    turns into an unraisable ResourceWarning.)
    """
    servers: list[Server] = []

    def _run(
        build_argv: Callable[[int], Sequence[str]], env: dict[str, str] | None = None
    ) -> Server:
        port = free_port()
        server = start_server(build_argv(port), port, env=env)
        servers.append(server)
        return server

    yield _run
    for server in servers:
        server.stop()
        if server.proc.stdout is not None:
            server.proc.stdout.close()


@pytest.fixture(params=sorted(SERVERS))
def served(
    request: pytest.FixtureRequest, run_server: RunServer, tmp_path: Path
) -> tuple[str, Server, Path]:
    log = tmp_path / "lifespan.log"
    env = {"BRIDGE_TEST_LIFESPAN_LOG": str(log)}
    if request.param == "gunicorn-trio":
        env["BRIDGE_TEST_BACKEND"] = "trio"
    server = run_server(SERVERS[request.param], env=env)
    return request.param, server, log


@pytest.mark.timeout(120)
def test_requests_and_lifespan_once_per_process(served: tuple[str, Server, Path]) -> None:
    name, server, log = served
    pids: set[int] = set()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for number in range(40):
            assert client.get("/hello").json() == {"message": "hello"}
            body = f"payload {number} é" * 100
            assert client.post("/echo", content=body.encode()).text == body
            state = client.get("/state").json()
            assert state["started_by"] == state["pid"]
            pids.add(state["pid"])
    server.stop()
    events = collections.Counter(log.read_text().split("\n")[:-1])
    started = {int(line.split()[1]) for line in events if line.startswith("startup")}
    assert pids <= started
    assert all(count == 1 for count in events.values()), events
    if name.startswith("gunicorn"):  # workers exit normally on SIGTERM, so atexit runs
        assert {f"shutdown {pid}" for pid in started} <= set(events)


@pytest.mark.parametrize("worker", ["sync", "gthread"])
@pytest.mark.parametrize("path", ["/stream", "/sse"])
def test_streams_progressively_through_gunicorn(
    run_server: RunServer, tmp_path: Path, worker: str, path: str
) -> None:
    server = run_server(gunicorn("-w", "1", "-k", worker))
    gate = tmp_path / "gate"
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", path, params={"gate": str(gate)}) as response,
    ):
        chunks = response.iter_raw()
        first = next(chunks)
        assert first in (b"first\n", b"data: one\n\n")  # arrived while the app is still waiting
        gate.touch()
        rest = b"".join(chunks)
    assert rest in (b"rest\n", b"data: two\n\n")
    if path == "/sse":
        assert response.headers["content-type"].startswith("text/event-stream")


def _peak_rss(server: Server) -> int:
    (worker,) = psutil.Process(server.proc.pid).children()
    for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for VmHWM")
def test_256_mib_each_way_with_bounded_memory(run_server: RunServer) -> None:
    size = 256 * MiB
    server = run_server(gunicorn("-w", "1", "-k", "gthread", "--threads", "2"))
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.get("/hello").status_code == 200  # warm up: loop, lifespan, imports
        before = _peak_rss(server)

        def upload() -> Iterator[bytes]:
            block = b"u" * MiB
            for _ in range(size // MiB):
                yield block

        assert client.post("/upload", content=upload()).json() == {"received": size}
        received = 0
        with client.stream("GET", "/download", params={"size": size}) as response:
            for chunk in response.iter_raw():
                received += len(chunk)
        assert received == size
        growth = _peak_rss(server) - before
    # Everything is streamed: a few chunks in flight, never the body.
    assert growth < 16 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB"
