"""WsgiToAsgi under real ASGI servers on 127.0.0.1: uvicorn (h11 and httptools, asyncio
and uvloop) and hypercorn (asyncio and trio workers), serving real Flask and Django apps
and the plain WSGI apps of ``tests.apps.wsgi_apps`` (all behind ``wsgiref.validate``)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import select
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from tests.conftest import PYTHON, RunServer, Server
from tests.memory import PeakRss

pytestmark = pytest.mark.server

MiB = 1024 * 1024


def uvicorn(
    http: str = "h11", loop: str = "asyncio"
) -> Callable[[str], Callable[[int], list[str]]]:
    def for_app(app: str) -> Callable[[int], list[str]]:
        def argv(port: int) -> list[str]:
            return [
                PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--http", http, "--loop", loop, "--log-level", "info", "--no-access-log",
            ]  # fmt: skip

        return argv

    return for_app


def hypercorn(worker: str) -> Callable[[str], Callable[[int], list[str]]]:
    def for_app(app: str) -> Callable[[int], list[str]]:
        def argv(port: int) -> list[str]:
            return [PYTHON, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", "-k", worker]

        return argv

    return for_app


SERVERS = [
    pytest.param(uvicorn("h11"), id="uvicorn-h11"),
    pytest.param(uvicorn("httptools", "uvloop"), id="uvicorn-httptools-uvloop"),
    pytest.param(hypercorn("asyncio"), id="hypercorn-asyncio"),
    pytest.param(hypercorn("trio"), id="hypercorn-trio"),
]
ServerFactory = Callable[[str], Callable[[int], list[str]]]


@pytest.mark.parametrize("server", SERVERS)
def test_flask(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.flask_app:asgi"))
    with httpx.Client(base_url=running.url, timeout=30) as c:
        assert c.get("/").text == "Hello from Flask"
        assert c.post("/echo", content=b"e" * 3 * MiB).content == b"e" * 3 * MiB
        assert c.get("/stream").text == "".join(f"line {i}\n" for i in range(10))
        assert len(c.get("/cookies").headers.get_list("set-cookie")) == 2
        assert c.get("/boom").status_code == 500
    output = running.stop()
    assert "RuntimeError: boom" in output  # Flask logs its own traceback


@pytest.mark.parametrize("server", SERVERS)
def test_django(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.django_app:asgi"))
    with httpx.Client(base_url=running.url, timeout=30) as c:
        assert c.get("/").text == "Hello from Django"
        assert c.post("/echo", content=b"d" * MiB).content == b"d" * MiB
        info = c.get("/info", params={"q": "ü"}).json()
        assert info["query"] == {"q": "ü"}
        assert c.get("/stream").text.count("line") == 10


@pytest.mark.parametrize("server", SERVERS)
def test_lifespan_needs_no_flag(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with httpx.Client(base_url=running.url) as c:
        assert c.get("/").status_code == 200
    output = running.stop()
    assert "error" not in output.lower(), output
    assert "exception" not in output.lower(), output


KEEP_ALIVE_SERVERS = [
    pytest.param(uvicorn("h11"), id="uvicorn-h11"),
    pytest.param(uvicorn("httptools", "uvloop"), id="uvicorn-httptools-uvloop"),
    pytest.param(hypercorn("trio"), id="hypercorn-trio"),
]


@pytest.mark.slow
@pytest.mark.parametrize("server", KEEP_ALIVE_SERVERS)
def test_flask_keep_alive(run_server: RunServer, server: ServerFactory) -> None:
    """asgiref's adapter fails about every second keep-alive request under uvicorn 0.54."""
    running = run_server(server("tests.apps.flask_app:asgi"))
    with httpx.Client(base_url=running.url, limits=httpx.Limits(max_connections=1)) as c:
        statuses = [c.get("/stream" if i % 3 else "/").status_code for i in range(300)]
    assert statuses == [200] * 300


@pytest.mark.slow
@pytest.mark.parametrize("server", KEEP_ALIVE_SERVERS)
def test_keep_alive_requests_do_not_leak_state(
    run_server: RunServer, server: ServerFactory
) -> None:
    """Many requests on ONE connection all succeed and none sees the previous one's context."""
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    ports = set()
    with httpx.Client(base_url=running.url, limits=httpx.Limits(max_connections=1)) as c:
        for i in range(300):
            path = "/context" if i % 2 else "/context2"
            response = c.get(path)
            assert response.status_code == 200, (i, response.text)
            assert response.json()["seen"] == "unset", i
            if i % 50 == 0:
                ports.add(c.get("/environ").json()["REMOTE_PORT"])
    assert len(ports) == 1  # really one keep-alive connection


# -- disconnects ---------------------------------------------------------------------------


def events(server: Server) -> list[str]:
    result: list[str] = httpx.get(server.url + "/events").json()
    return result


def wait_for_event(server: Server, prefix: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [e for e in events(server) if e.startswith(prefix)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {prefix!r} event; saw {events(server)}")


DISCONNECT_SERVERS = [
    pytest.param(uvicorn("h11"), id="uvicorn-h11"),
    pytest.param(uvicorn("httptools", "uvloop"), id="uvicorn-httptools-uvloop"),
    pytest.param(hypercorn("asyncio"), id="hypercorn-asyncio"),
    pytest.param(hypercorn("trio"), id="hypercorn-trio"),
]


@pytest.mark.parametrize("server", DISCONNECT_SERVERS)
def test_disconnect_mid_upload_raises_in_the_app(
    run_server: RunServer, server: ServerFactory
) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 10000000\r\n\r\n" + b"u" * 300_000
        )
        time.sleep(0.2)  # let the app start reading; not an assertion on time
    event = wait_for_event(running, "upload-error:")
    assert event.startswith("upload-error:ClientDisconnected:")
    assert "disconnected" in event
    with httpx.Client(base_url=running.url) as c:  # the server is fine
        assert c.get("/").status_code == 200


@pytest.mark.parametrize("slow_reader", [False, True], ids=["fast-reader", "slow-reader"])
@pytest.mark.parametrize("server", DISCONNECT_SERVERS)
def test_disconnect_mid_download_closes_iterable(
    run_server: RunServer, server: ServerFactory, slow_reader: bool
) -> None:
    """An endless response stops and is closed when the client goes, also after the
    client has been slow (backpressure: the queue was full, the loop never idle)."""
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(b"GET /download?mib=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 2 * MiB:
            received += len(sock.recv(65536))
            if slow_reader:
                time.sleep(0.002)  # pacing only; nothing asserts on time
    assert wait_for_event(running, "closed:download") == "closed:download"
    with httpx.Client(base_url=running.url) as c:
        assert c.get("/").status_code == 200


# -- large bodies with bounded memory ------------------------------------------------------


def body(total: int, chunk: bytes) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def upload_and_download(c: httpx.Client, size: int) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    response = c.post("/upload", content=body(size, chunk), headers={"Content-Length": str(size)})
    expected = hashlib.sha256()
    for _ in range(size // len(chunk)):
        expected.update(chunk)
    assert response.json() == {"size": size, "sha256": expected.hexdigest()}
    received = 0
    with c.stream("GET", "/download", params={"mib": size // MiB}) as download:
        for data in download.iter_raw():
            received += len(data)
    assert received == size


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "server",
    [
        pytest.param(uvicorn("h11"), id="uvicorn-h11"),
        pytest.param(uvicorn("httptools", "uvloop"), id="uvicorn-httptools-uvloop"),
        pytest.param(hypercorn("trio"), id="hypercorn-trio"),
    ],
)
def test_256_mib_each_way_with_bounded_memory(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    pid = int(httpx.get(running.url + "/pid").text)
    with httpx.Client(base_url=running.url, timeout=120) as c:
        upload_and_download(c, 8 * MiB)  # warm up: imports, thread pool, buffers
        baseline = psutil.Process(pid).memory_info().rss
        with PeakRss(pid) as rss:
            upload_and_download(c, 256 * MiB)
    growth = rss.peak - baseline
    print(f"server peak RSS growth for 256 MiB each way: {growth / MiB:.1f} MiB")
    assert growth < 8 * MiB  # measured: 1.1-1.5 MiB


def test_readme_example_serves_flask(run_server: RunServer) -> None:
    running = run_server(lambda port: [PYTHON, "examples/legacy_flask.py", "--port", str(port)])
    with httpx.Client(base_url=running.url) as c:
        assert "Hello from Flask" in c.get("/").text
        assert c.post("/echo", content=b"ping" * 10_000).content == b"ping" * 10_000
        assert c.get("/count").text.split() == [str(n) for n in range(1, 11)]
    assert f"http://127.0.0.1:{running.port}" in running.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_non_ascii_and_percent_encoded_targets(
    run_server: RunServer, server: ServerFactory
) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.sendall(
            b"GET /environ/caf%C3%A9/a%20b/%FF?q=%C3%A9&r=%FF HTTP/1.1\r\n"
            b"Host: x\r\nX-Dup: 1\r\nX-Dup: 2\r\nX_Spoof: 1\r\nConnection: close\r\n\r\n"
        )
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    if b"chunked" in head.lower():
        body = b"".join(body.split(b"\r\n")[1::2])
    env = json.loads(body)
    assert env["PATH_INFO"].encode("latin-1").startswith("/environ/café/a b/".encode())
    assert env["QUERY_STRING"] == "q=%C3%A9&r=%FF"
    assert env["REQUEST_URI"].startswith("/environ/caf%C3%A9/a%20b/%FF?")
    assert env["HTTP_X_DUP"] == "1, 2"
    assert "HTTP_X_SPOOF" not in env


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(uvicorn("h11"), id="uvicorn-h11-wsproto"),
        pytest.param(hypercorn("asyncio"), id="hypercorn-asyncio"),
        pytest.param(hypercorn("trio"), id="hypercorn-trio"),
    ],
)
def test_websocket_is_refused_cleanly(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        status_line = sock.recv(65536).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 403"), status_line
    with httpx.Client(base_url=running.url) as c:
        assert c.get("/").status_code == 200


@pytest.mark.parametrize("server", SERVERS)
def test_content_length_mismatch_in_the_response(
    run_server: RunServer, server: ServerFactory
) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with httpx.Client(base_url=running.url, timeout=20) as c:
        assert c.get("/long").content == b"123"
        with pytest.raises(httpx.RemoteProtocolError):  # an error, never a hang
            c.get("/short")
        assert c.get("/").status_code == 200
    assert wait_for_event(running, "closed:short") == "closed:short"
    assert wait_for_event(running, "closed:long") == "closed:long"


@pytest.mark.parametrize("server", SERVERS)
def test_iterable_failing_mid_stream_aborts(run_server: RunServer, server: ServerFactory) -> None:
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with httpx.Client(base_url=running.url, timeout=20) as c:
        with pytest.raises(httpx.RemoteProtocolError):  # truncated, never a second response
            c.get("/fail-midway")
        assert c.get("/").status_code == 200
    assert wait_for_event(running, "closed:fail-midway") == "closed:fail-midway"
    output = running.stop()
    assert output.count("the application failed after the response started") == 1, output


@pytest.mark.parametrize("server", SERVERS)
def test_slow_requests_run_at_once(run_server: RunServer, server: ServerFactory) -> None:
    """8 requests that each wait for all 8 to be inside the app: they only complete if the
    adapter runs them concurrently (a serializing adapter would time the barrier out)."""
    running = run_server(server("tests.apps.wsgi_apps:asgi"))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: httpx.get(running.url + "/barrier").status_code, range(8))
        )
    assert statuses == [200] * 8


# -- refused uploads leave nothing behind (issue 13 item 16) --------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connections(pid: int) -> list[str]:
    found = psutil.Process(pid).net_connections("tcp")
    return [f"{c.raddr} {c.status}" for c in found if c.status != "LISTEN"]


def refused_upload(port: int, *, send_all: bool) -> bytes:
    """POST 8 MiB declared; send 1 MiB (or all 8, as long as the server takes them) in
    64 KiB pieces, read the status line, hang up."""
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n" % (8 * MiB)
    )
    piece = b"u" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        for _ in range((8 if send_all else 1) * 16):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server answered and closed: read what it said
                break
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer.split(b"\r\n", 1)[0]


def settle(measure: Callable[[], int], baseline: int) -> int:
    """``measure()`` once it is back at ``baseline``, or its last value after 20 s."""
    deadline = time.monotonic() + 20
    value = measure()
    while value > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        value = measure()
    return value


@pytest.mark.parametrize(
    ("app", "status"),
    [
        pytest.param("tests.apps.refusing_apps:refuse_401", b"401", id="401-unread"),
        pytest.param("tests.apps.refusing_apps:buffered_413", b"413", id="RequestBuffering-413"),
    ],
)
@pytest.mark.parametrize(
    "server",
    [
        pytest.param(hypercorn("asyncio"), id="hypercorn-asyncio"),
        pytest.param(hypercorn("trio"), id="hypercorn-trio"),
    ],
)
def test_refused_uploads_leave_no_connection_behind(
    run_server: RunServer, server: ServerFactory, app: str, status: bytes
) -> None:
    """A WSGI app refusing large uploads unread: after 20 of them (half the clients hang
    up after 1 of 8 MiB, half send it all), the server's open fds and TCP connections
    are back at their baseline, so no connection or task stays behind."""
    running = run_server(server(app))
    with httpx.Client(base_url=running.url, headers={"Connection": "close"}) as c:
        pid = int(c.get("/pid").text)
    assert refused_upload(running.port, send_all=True).split()[1] == status  # warm up
    assert settle(lambda: len(connections(pid)), 0) == 0, connections(pid)
    baseline_fds = open_fds(pid)
    for i in range(20):
        assert refused_upload(running.port, send_all=bool(i % 2)).split()[1] == status
    assert settle(lambda: len(connections(pid)), 0) == 0, connections(pid)
    assert settle(lambda: open_fds(pid), baseline_fds) == baseline_fds
    with httpx.Client(base_url=running.url, headers={"Connection": "close"}) as c:
        assert c.get("/pid").status_code == 200  # and it still serves
