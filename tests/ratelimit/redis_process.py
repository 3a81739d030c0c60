"""A redis-server of the test's own, on a free port, that a test may kill and restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI, free_port, redis_server_binary, wait_for_port


class RedisProcess:
    """One redis-server; ``stop()`` kills it, ``start()`` brings it back on the same port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*argv, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server this test owns; always stopped afterwards."""
    binary = redis_server_binary()
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if IN_CI:  # .ci/run installs it: never skip silently there
            pytest.fail(message)
        pytest.skip(message)
    server = RedisProcess(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
