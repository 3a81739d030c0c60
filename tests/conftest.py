"""Shared fixtures: every async test runs on asyncio and trio; real servers on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Every ``@pytest.mark.anyio`` test runs once per backend."""
    backend: tuple[str, dict[str, object]] = request.param
    return backend


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int | Path, proc: subprocess.Popen[bytes] | None, timeout: float = 20.0
) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (or on the Unix
    socket at ``port``, a Path); fail early with its output if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{out}")
        try:
            with _connect(port):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {_where(port)} within {timeout}s")


def _connect(port: int | Path) -> socket.socket:
    if not isinstance(port, Path):
        return socket.create_connection(("127.0.0.1", port), timeout=0.5)
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.settimeout(0.5)
        probe.connect(str(port))
    except OSError:
        probe.close()
        raise
    return probe


def _where(port: int | Path) -> str:
    return str(port) if isinstance(port, Path) else f"127.0.0.1:{port}"


class Server:
    """A server process on 127.0.0.1; ``url`` is its base URL. A server on a Unix socket
    has port 0 and ``url`` ``http://localhost`` (connect through the socket)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else "http://localhost"
        self.output = ""

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL) and return what it printed.

        Safe to call twice (a test may stop its server to read the output before the
        fixture does); the pipe is closed so no ResourceWarning fails a later test.
        """
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output += self.proc.stdout.read().decode(errors="replace")
            self.proc.stdout.close()
        return self.output


def start_server(
    argv: Sequence[str], port: int | Path, *, env: dict[str, str] | None = None
) -> Server:
    """Start ``argv`` (a server listening on ``port``) and wait until it accepts connections.

    The test modules under tests/ are importable as ``tests.xxx`` from the repository
    root, which is the child's working directory.
    """
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(
        list(argv),
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return Server(proc, 0 if isinstance(port, Path) else port)


class RunServer(Protocol):
    def __call__(
        self, build_argv: Callable[[int], Sequence[str]], env: dict[str, str] | None = None
    ) -> Server: ...


@pytest.fixture
def run_server() -> Iterator[RunServer]:
    """``run_server(build_argv)``: start servers, always stopped after the test.

    ``build_argv(port)`` returns the command line for a free port.
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


PYTHON = sys.executable


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port for the whole session.

    Outside CI a missing redis-server skips the test; in CI it fails loudly,
    because .ci/run installs it.
    """
    binary = redis_server_binary()
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()  # an unclosed pipe is a ResourceWarning, an error under -W error


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgiref_server(app: Any) -> Iterator[Callable[[bytes], bytes]]:
    """``app`` served by wsgiref's simple server on a free loopback port, in a thread:
    yields ``exchange(raw_request) -> raw_reply`` (one connection each, read to EOF).
    wsgiref gives ``wsgi.input`` as the raw socket and never de-chunks a body."""
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def exchange(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as conn:
            conn.sendall(raw)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        return reply

    try:
        yield exchange
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


#: A chunked upload and a sized one, as raw HTTP/1.1 requests.
CHUNKED_UPLOAD = (
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
)
SIZED_UPLOAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
