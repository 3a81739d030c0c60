"""The server matrix: every server users deploy bridge on, with the full middleware stack.

A Flask app through ``WsgiToAsgi`` under the ASGI servers (uvicorn, hypercorn on
asyncio and trio, daphne, granian) and a FastAPI app through ``AsgiToWsgi`` under
the WSGI servers (gunicorn sync / gthread / gevent with and without ``--preload``,
gevent.pywsgi, waitress, uWSGI, granian's WSGI interface). Each server is started
once per module on 127.0.0.1 and checked for: hello, a 20 MiB echo byte for byte,
progressive streaming, lifespan, the middleware stack (413, 429 with Retry-After,
the forwarded client, security headers), ``async_to_sync`` inside a handler, and a
clean exit on SIGTERM. Nothing here asserts on time.

Known defects are marked ``xfail(strict=True)`` with the defect they wait for, so a
fix shows up as an unexpected pass that must remove the mark.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.apps.matrix_apps import LIMITED_PER_MINUTE
from tests.conftest import PYTHON, Server, free_port, start_server

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

MiB = 1024 * 1024
FLASK = "tests.apps.matrix_apps:flask_asgi"
FASTAPI = "tests.apps.matrix_apps:fastapi_wsgi"
Argv = Callable[[int], list[str]]

NO_SHUTDOWN = "issue 13 item 9: lifespan shutdown never runs under this server"
#: Not strict: whether the refused upload's connection is still open at SIGTERM is timing.


@dataclass
class Config:
    argv: Argv
    #: "asgi" servers run the Flask app, "wsgi" servers the FastAPI app
    interface: str
    #: check name -> reason it is a known defect under this server
    known: dict[str, str] = field(default_factory=dict)
    #: uWSGI's --http-socket closes each connection after its response
    keepalive: bool = True
    #: extra environment for the server (e.g. a preloading master that serves first)
    env: dict[str, str] = field(default_factory=dict)


def _gunicorn(*options: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--timeout", "120", "--graceful-timeout", "10", *options, FASTAPI,
        ]  # fmt: skip

    return argv


def _uvicorn(port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), FLASK]


def _hypercorn(worker: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [PYTHON, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "-k", worker, FLASK]

    return argv


def _daphne(port: int) -> list[str]:
    return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), FLASK]


def _granian(interface: str, app: str, *options: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "granian", "--interface", interface, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", *options, app,
        ]  # fmt: skip

    return argv


def _waitress(port: int) -> list[str]:
    return [PYTHON, "-m", "tests.apps.matrix_waitress", str(port)]


def _uwsgi(port: int) -> list[str]:
    return [
        PYTHON, "-c", "import pyuwsgi, sys; pyuwsgi.run(sys.argv[1:])",
        "--http-socket", f"127.0.0.1:{port}", "--module", FASTAPI, "--master",
        "--processes", "1", "--threads", "8", "--enable-threads", "--die-on-term",
        "--lazy-apps", "--need-app", "--disable-logging",
    ]  # fmt: skip


def _gevent_pywsgi(port: int) -> list[str]:
    return [PYTHON, "-m", "tests.apps.matrix_gevent", str(port)]


#: the preloading master serves a request through bridge before it forks its workers
SERVED = {"MATRIX_SERVE_AT_IMPORT": "1"}

SERVERS: dict[str, Config] = {
    "uvicorn": Config(_uvicorn, "asgi"),
    "hypercorn-asyncio": Config(_hypercorn("asyncio"), "asgi"),
    "hypercorn-trio": Config(_hypercorn("trio"), "asgi"),
    "daphne": Config(_daphne, "asgi"),
    "granian-asgi": Config(_granian("asgi", FLASK), "asgi"),
    "gunicorn-sync": Config(_gunicorn("-k", "sync"), "wsgi"),
    "gunicorn-sync-preload": Config(_gunicorn("-k", "sync", "--preload"), "wsgi", env=SERVED),
    "gunicorn-gthread": Config(_gunicorn("-k", "gthread", "--threads", "8"), "wsgi"),
    "gunicorn-gthread-preload": Config(
        _gunicorn("-k", "gthread", "--threads", "8", "--preload"), "wsgi", env=SERVED
    ),
    "gunicorn-gevent": Config(_gunicorn("-k", "gevent"), "wsgi"),
    "gunicorn-gevent-preload": Config(_gunicorn("-k", "gevent", "--preload"), "wsgi"),
    "gevent-pywsgi": Config(_gevent_pywsgi, "wsgi"),
    "waitress": Config(_waitress, "wsgi"),
    "uwsgi": Config(_uwsgi, "wsgi", keepalive=False),
    "granian-wsgi": Config(
        _granian("wsgi", FASTAPI, "--blocking-threads", "8"),
        "wsgi",
        {"lifespan-shutdown": NO_SHUTDOWN},
    ),
}


@dataclass
class Running:
    name: str
    config: Config
    server: Server
    log: Path
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module", params=list(SERVERS))
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    name: str = request.param
    config = SERVERS[name]
    tmp = tmp_path_factory.mktemp(name)
    log = tmp / "lifespan.log"
    port = free_port()
    server = start_server(config.argv(port), port, env={"MATRIX_LOG": str(log), **config.env})
    try:
        yield Running(name, config, server, log, tmp)
    finally:
        server.stop()


def _known(request: pytest.FixtureRequest, running: Running, check: str) -> None:
    """Mark this test as a known defect under this server (strict: a fix must remove it)."""
    reason = running.config.known.get(check)
    if reason:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def _client(running: Running) -> httpx.Client:
    keepalive = None if running.config.keepalive else 0
    limits = httpx.Limits(max_keepalive_connections=keepalive)
    return httpx.Client(base_url=running.url, timeout=30, limits=limits)


def test_hello(request: pytest.FixtureRequest, running: Running) -> None:
    _known(request, running, "hello")
    with _client(running) as client:
        response = client.get("/hello")
    assert (response.status_code, response.text) == (200, "hello")


def test_echo_20_mib_byte_for_byte(request: pytest.FixtureRequest, running: Running) -> None:
    _known(request, running, "echo")
    body = os.urandom(20 * MiB)
    with _client(running) as client:
        response = client.post("/echo", content=body)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(body).digest()


def test_streaming_is_progressive(request: pytest.FixtureRequest, running: Running) -> None:
    """The first chunk reaches the client while the app still waits to send the last."""
    _known(request, running, "stream")
    gate = running.tmp / "gate"
    with _client(running) as client, client.stream("GET", f"/stream?gate={gate}") as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        gate.touch()  # only now may the app finish
        rest = b"".join(chunks)
    assert first.startswith(b"first;")
    assert first + rest == b"first;last"


def test_lifespan_startup(request: pytest.FixtureRequest, running: Running) -> None:
    _known(request, running, "lifespan")
    with _client(running) as client:
        response = client.get("/lifespan")
    expected = "yes" if running.config.interface == "wsgi" else "none"
    assert (response.status_code, response.text) == (200, expected)


def test_middleware_stack(request: pytest.FixtureRequest, running: Running) -> None:
    """413 over the cap, 429 with Retry-After, the forwarded client, security headers."""
    _known(request, running, "stack")
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with _client(running) as client:
        seen = client.get("/client", headers=forwarded)
        statuses = [client.get("/limited").status_code for _ in range(LIMITED_PER_MINUTE + 1)]
        refused = client.get("/limited")
    assert seen.status_code == 200
    assert seen.text.split()[:2] == ["203.0.113.7", "https"]
    assert seen.headers["strict-transport-security"].startswith("max-age=")
    assert seen.headers["x-content-type-options"] == "nosniff"
    assert statuses == [200] * LIMITED_PER_MINUTE + [429]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert _status_of_oversized_upload(running) == 413


def _status_of_oversized_upload(running: Running) -> int:
    """Send 25 MiB against a 24 MiB cap and read the status line.

    Some servers (daphne, waitress) read the whole body before the app runs, so the
    body is sent in full from a thread; a server that answers early may close the
    connection under the sender, which is fine.
    """
    size = 25 * MiB
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=30) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % size)
        sender = threading.Thread(target=_send_quietly, args=(sock, size), daemon=True)
        sender.start()
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        sender.join(30)
    return int(head.split(b" ", 2)[1])


def _send_quietly(sock: socket.socket, size: int) -> None:
    block = b"x" * MiB
    with contextlib.suppress(OSError):
        for _ in range(size // MiB):
            sock.sendall(block)


def test_async_to_sync_inside_a_handler(request: pytest.FixtureRequest, running: Running) -> None:
    _known(request, running, "sync")
    with _client(running) as client:
        answers = [client.get("/sync") for _ in range(3)]  # not only the first call
    assert [(r.status_code, r.text) for r in answers] == [(200, "42")] * 3


def test_sigterm_exits_cleanly(request: pytest.FixtureRequest, running: Running) -> None:
    """Runs last in the module for each server: it stops the server."""
    _known(request, running, "sigterm")
    with _client(running) as client:
        client.get("/hello")  # workers have served a request before they stop
    proc = running.server.proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{running.name} did not exit within 20 s of SIGTERM")
    output = running.server.stop()  # the master's and the workers' output, exits included
    assert "Traceback" not in output, output
    assert "Exception ignored" not in output, output
    if running.config.interface == "wsgi":
        events = running.log.read_text().split() if running.log.exists() else []
        assert "startup" in events
        _known(request, running, "lifespan-shutdown")
        assert "shutdown" in events, output
