"""Soak: many keep-alive requests through real servers leave RSS, threads and fds flat.

Each server runs the server matrix's app behind the full middleware stack
(``tests.apps.matrix_apps``): ``WsgiToAsgi`` under uvicorn and ``AsgiToWsgi`` under
gunicorn gthread. After a warm-up (caches, thread pools and allocator arenas reach
their working size), the server process is measured, the soak runs, and the same
measures are taken again. A per-request leak of one thread, one fd or a few hundred
bytes shows up as growth far beyond the bounds below. Bounded in count, not time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psutil
import pytest

from tests.conftest import PYTHON, RunServer

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(300)]

WARM_UP = 2_000
#: What may differ between two idle moments without any per-request leak: allocator
#: noise, and a worker pool that has one call in flight or retires an idle thread.
#: A leak of one per request would be thousands over the soak.
RSS_SLACK = 8 * 1024 * 1024
THREAD_SLACK = 4
FD_SLACK = 4


@dataclass(frozen=True)
class Footprint:
    rss: int
    threads: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> Footprint:
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return cls(
            rss=sum(p.memory_info().rss for p in processes),
            threads=sum(p.num_threads() for p in processes),
            fds=sum(p.num_fds() for p in processes),
        )


def _uvicorn(port: int) -> list[str]:
    return [
        PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "tests.apps.matrix_apps:flask_asgi",
    ]  # fmt: skip


def _gunicorn(port: int) -> list[str]:
    return [
        PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "-k", "gthread", "--threads", "4", "tests.apps.matrix_apps:fastapi_wsgi",
    ]  # fmt: skip


def _requests(client: httpx.Client, count: int) -> None:
    """Mixed traffic: hellos, small uploads, forwarded requests, refused requests."""
    body = os.urandom(2048)
    for index in range(count):
        kind = index % 4
        if kind == 0:
            response = client.get("/hello")
        elif kind == 1:
            response = client.post("/echo", content=body)
        elif kind == 2:
            response = client.get("/client", headers={"X-Forwarded-For": "203.0.113.9"})
        else:
            response = client.get("/limited")  # mostly 429 after the first three
        assert response.status_code in (200, 429), response.text


@pytest.mark.parametrize(
    ("argv", "soak"),
    [
        pytest.param(_uvicorn, 20_000, id="uvicorn-wsgi_to_asgi"),
        pytest.param(_gunicorn, 5_000, id="gunicorn-asgi_to_wsgi"),
    ],
)
def test_soak_leaves_rss_threads_and_fds_flat(
    run_server: RunServer, argv: Callable[[int], list[str]], soak: int
) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _requests(client, WARM_UP)
        before = Footprint.of(server.proc.pid)
        _requests(client, soak)
        after = Footprint.of(server.proc.pid)
    assert after.threads <= before.threads + THREAD_SLACK, (before, after)
    assert after.fds <= before.fds + FD_SLACK, (before, after)
    assert after.rss - before.rss < RSS_SLACK, (before, after)
    print(f"soak {soak}: {before} -> {after}")  # shown with -s, for the benchmarks README
