"""Over a unix socket the server gives no client address: requests pass, one warning."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time

import httpx
import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.server


def wait_for_socket(path: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited before listening")
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {path}")


@pytest.mark.timeout(60)
def test_unix_socket_requests_pass_with_one_warning() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "app.sock")
        argv = [PYTHON, "-m", "uvicorn", "--uds", path, "--lifespan", "off", "--no-access-log"]
        proc = subprocess.Popen(
            [*argv, "tests.ratelimit.server_apps:memory_asgi_app"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_socket(path, proc)
            transport = httpx.HTTPTransport(uds=path)
            with httpx.Client(transport=transport, base_url="http://app") as client:
                statuses = [client.get("/").status_code for _ in range(3)]
        finally:
            proc.terminate()
            proc.wait(10)
            output = proc.stdout.read().decode() if proc.stdout else ""
            if proc.stdout:
                proc.stdout.close()
    assert statuses == [200, 200, 200]  # "1/hour" would refuse the second with an address
    assert output.count("no client address") == 1, output
