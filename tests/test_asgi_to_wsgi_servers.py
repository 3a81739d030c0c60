"""AsgiToWsgi under real WSGI servers on 127.0.0.1: waitress, gunicorn sync and gthread.

The served site (``tests.apps.asgi_wsgi_site``) mounts real FastAPI, Starlette
and Django apps and a plain ASGI app, each through AsgiToWsgi inside
``wsgiref.validate.validator``. Nothing here asserts on time: apps that must
wait for the test wait for a file the test creates.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bridge import AsgiToWsgi
from tests.apps.asgi_apps import echo
from tests.apps.asgi_frameworks import pattern
from tests.conftest import (
    CHUNKED_UPLOAD,
    PYTHON,
    SIZED_UPLOAD,
    RunServer,
    Server,
    free_port,
    start_server,
    wsgiref_server,
)

pytestmark = pytest.mark.server

MiB = 1024 * 1024
SITE = "tests.apps.asgi_wsgi_site:application"
Argv = Callable[[int], list[str]]


def waitress(port: int) -> list[str]:
    return [PYTHON, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=16", SITE]


def gunicorn(*options: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--timeout", "120",
            "--graceful-timeout", "10", *options, SITE,
        ]  # fmt: skip

    return argv


SYNC = gunicorn("--workers", "1", "--worker-class", "sync")
GTHREAD = gunicorn("--workers", "1", "--worker-class", "gthread", "--threads", "16")
SERVERS = {"waitress": waitress, "gunicorn-sync": SYNC, "gunicorn-gthread": GTHREAD}
#: The shared-site tests also run with the apps on trio and uvloop (Django stays on asyncio).
SITES = {
    **{name: (argv, "asyncio") for name, argv in SERVERS.items()},
    "gunicorn-gthread-trio": (GTHREAD, "trio"),
    "gunicorn-sync-uvloop": (SYNC, "asyncio+uvloop"),
}


class Site:
    """One running server and the lifespan log its processes write."""

    def __init__(self, name: str, server: Server, log: Path, backend: str) -> None:
        self.name = name
        self.backend = backend
        self.server = server
        self.url = server.url
        self.log = log

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module", params=list(SITES))
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Each server started once for the module (the tests below share it), always stopped."""
    name: str = request.param
    argv, backend = SITES[name]
    log = tmp_path_factory.mktemp(name) / "lifespan.log"
    port = free_port()
    env = {"BRIDGE_TEST_LIFESPAN_LOG": str(log), "BRIDGE_TEST_BACKEND": backend}
    running = Site(name, start_server(argv(port), port, env=env), log, backend)
    try:
        yield running
    finally:
        running.server.stop()


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# -- the frameworks over the wire ---------------------------------------------------------


def test_frameworks_answer_over_the_wire(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        item = client.get("/fastapi/items/3", params={"q": "é"})
        assert item.json()["url"] == f"{site.url}/fastapi/items/3?q=%C3%A9"
        assert item.json()["root_path"] == "/fastapi"
        body = os.urandom(MiB + 3)
        assert client.post("/fastapi/echo", content=body).content == body
        assert client.post("/django/echo", content=body).content == body
        assert client.get("/starlette/").text == "hello from lifespan at /starlette/"
        assert client.get("/django/info").json()["script_name"] == "/django"
        streamed = client.get("/django/stream").text
        assert streamed == "".join(f"line {n}\n" for n in range(10))
        assert client.get("/fastapi/missing").status_code == 404
        assert client.get("/nowhere").status_code == 404
        cookies = client.get("/fastapi/cookies").headers.get_list("set-cookie")
        assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2"]


@pytest.mark.parametrize("server", list(SERVERS))
def test_non_utf8_path_is_400_with_one_log_line(run_server: RunServer, server: str) -> None:
    running = run_server(SERVERS[server])
    response = httpx.get(f"{running.url}/fastapi/%FF%FE", timeout=30)
    assert response.status_code == 400
    assert get_json(f"{running.url}/fastapi/pid")["startups"] == 1  # the server lives on
    output = running.stop()
    assert output.count("PATH_INFO is not valid UTF-8") == 1, output


def test_file_response_through_the_servers_file_wrapper(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "payload.bin"
    target.write_bytes(os.urandom(3 * MiB + 11))
    response = httpx.get(f"{site.url}/starlette/file", params={"path": str(target)}, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(3 * MiB + 11)
    assert response.content == target.read_bytes()


def test_app_failing_mid_stream_aborts_the_connection(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        received: list[bytes] = []
        with client.stream("GET", "/fastapi/fails-midway") as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                received.extend(response.iter_bytes())
        assert b"".join(received) == b"partial\n"  # no second response, no clean end
        assert client.get("/fastapi/pid").json()["startups"] == 1  # the server lives on


def test_sixteen_threads_many_requests(site: Site) -> None:
    def worker(number: int) -> list[str]:
        failures = []
        with httpx.Client(base_url=site.url, timeout=30) as client:
            for request in range(25):
                payload = f"{number}:{request}:".encode() * (1 + 37 * request)
                path = "/fastapi/echo" if request % 3 else "/django/echo"
                response = client.post(path, content=payload)
                if (response.status_code, response.content) != (200, payload):
                    failures.append(f"{number}/{request} {path}: {response.status_code}")
        return failures

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    assert [f for failures in results for f in failures] == []


def test_client_gone_mid_download(site: Site) -> None:
    # A request's task ends just after its response is handed over: wait for the count
    # to settle at the status request's own task (asyncio; trio reports -1).
    settled = -1 if site.backend == "trio" else 1
    before = wait_for_status(site, lambda s: s["request_tasks"] == settled)
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=30) as sock:
        sock.sendall(b"GET /plain/stream HTTP/1.1\r\nHost: test\r\n\r\n")
        received = b""
        while len(received) < 256 * 1024:  # well into the body
            data = sock.recv(65536)
            assert data, f"the server closed the connection early: {received[:200]!r}"
            received += data
        assert received.startswith(b"HTTP/1.1 200")
        # closing with unread data makes the kernel reset the connection
    # Bounded waits: the app's task must end and no request task may stay behind.
    after = wait_for_status(
        site, lambda s: s["ended"] == before["ended"] + 1 and s["request_tasks"] == settled
    )
    assert after["started"] == before["started"] + 1
    assert after["disconnects"] == before["disconnects"] + 1


def wait_for_status(site: Site, done: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """Poll ``/plain/status`` until ``done``; bounded, so a hang fails the test."""
    for _ in range(2000):
        status: dict[str, int] = get_json(f"{site.url}/plain/status")
        if done(status):
            return status
        time.sleep(0.01)
    raise AssertionError(f"the endless app never finished: {status}")


def test_lifespan_startup_once_per_process(site: Site) -> None:
    for _ in range(5):
        get_json(f"{site.url}/fastapi/pid")
    worker = get_json(f"{site.url}/fastapi/pid")
    loop = {"asyncio": "asyncio", "trio": "trio", "asyncio+uvloop": "uvloop"}[site.backend]
    assert (worker["startups"], worker["loop"]) == (1, loop)
    assert worker["started_by"] == worker["pid"]
    startups = [line for line in site.lines() if line.startswith("startup fastapi")]
    assert startups == [f"startup fastapi {worker['pid']}"]


@pytest.mark.parametrize("sigterm_exits", [True, False], ids=["sigterm-handler", "default"])
def test_waitress_shutdown_needs_the_sigterm_recipe(
    run_server: RunServer, tmp_path: Path, sigterm_exits: bool
) -> None:
    log = tmp_path / "lifespan.log"
    env = {"BRIDGE_TEST_LIFESPAN_LOG": str(log)}
    if sigterm_exits:
        env["BRIDGE_TEST_SIGTERM_EXITS"] = "1"
    running = run_server(waitress, env)
    pid = get_json(f"{running.url}/fastapi/pid")["pid"]
    running.stop()  # SIGTERM
    expected = [f"startup fastapi {pid}"] + ([f"shutdown fastapi {pid}"] if sigterm_exits else [])
    assert log.read_text().splitlines() == expected


@pytest.mark.parametrize("server", ["waitress", "gunicorn-gthread"])
def test_requests_during_a_slow_startup_wait_for_it(
    run_server: RunServer, tmp_path: Path, server: str
) -> None:
    log, gate = tmp_path / "lifespan.log", tmp_path / "startup.gate"
    env = {"BRIDGE_TEST_LIFESPAN_LOG": str(log), "BRIDGE_TEST_STARTUP_GATE": str(gate)}
    running = run_server(SERVERS[server], env)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = [pool.submit(get_json, f"{running.url}/fastapi/pid") for _ in range(16)]
        wait_for_lines(log, 1)  # startup is running, and waits for the gate
        assert not any(answer.done() for answer in answers)
        gate.touch()
        results = [answer.result(timeout=30) for answer in answers]
    assert {(r["startups"], r["started_by"] == r["pid"]) for r in results} == {(1, True)}
    assert log.read_text().splitlines() == [f"startup fastapi {results[0]['pid']}"]


# -- progressive streaming through gunicorn and waitress ---------------------------------


@pytest.mark.parametrize(
    ("server", "backend"),
    [
        ("gunicorn-sync", "asyncio"),
        ("gunicorn-gthread", "asyncio"),
        ("gunicorn-gthread", "trio"),
        ("waitress", "asyncio"),
    ],
)
def test_streaming_and_sse_are_progressive(
    run_server: RunServer, tmp_path: Path, server: str, backend: str
) -> None:
    running = run_server(SERVERS[server], {"BRIDGE_TEST_BACKEND": backend})
    with httpx.Client(base_url=running.url, timeout=30) as client:
        for path, first, rest in [
            ("stream", b"first\n", b"rest 0\nrest 1\nrest 2\n"),
            (
                "sse",
                b"event: tick\ndata: first\nid: 1\n\n",
                b"event: tick\ndata: event 2\nid: 2\n\nevent: tick\ndata: event 3\nid: 3\n\n",
            ),
        ]:
            gate = tmp_path / f"{path}.gate"
            with client.stream("GET", f"/fastapi/{path}", params={"gate": str(gate)}) as response:
                assert response.status_code == 200
                chunks = response.iter_bytes()
                assert next(chunks) == first  # while the endpoint waits for the gate file
                gate.touch()
                assert b"".join(chunks) == rest
            if path == "sse":
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-cache"


# -- fork safety: gunicorn --preload -----------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_preload_forks_safely_and_each_worker_starts_once(
    run_server: RunServer, tmp_path: Path, backend: str
) -> None:
    log, gate = tmp_path / "lifespan.log", tmp_path / "hold.gate"
    env = {
        "BRIDGE_TEST_LIFESPAN_LOG": str(log),
        "BRIDGE_TEST_WARM_IN_PARENT": "1",
        "BRIDGE_TEST_BACKEND": backend,
    }
    running = run_server(gunicorn("--preload", "--workers", "2", "--worker-class", "sync"), env)
    master = running.proc.pid
    # The master served a request (loop thread running, lifespan started) before forking.
    assert log.read_text().splitlines() == [f"startup fastapi {master}"]
    # A sync worker serves one request at a time: two held requests occupy both workers.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [pool.submit(get_json, f"{running.url}/fastapi/hold?gate={gate}") for _ in range(2)]
        wait_for_lines(log, 3)
        gate.touch()
        answers = [future.result(timeout=30) for future in held]
    workers = {answer["pid"] for answer in answers}
    assert len(workers) == 2
    assert master not in workers
    assert workers <= {child.pid for child in psutil.Process(master).children()}
    for _ in range(20):
        answers.append(get_json(f"{running.url}/fastapi/pid"))
    for answer in answers:
        assert answer["pid"] in workers
        assert (answer["startups"], answer["started_by"]) == (1, answer["pid"])
    running.stop()
    lines = log.read_text().splitlines()
    for pid in (master, *workers):
        assert lines.count(f"startup fastapi {pid}") == 1, lines
        assert lines.count(f"shutdown fastapi {pid}") == 1, lines
    assert len(lines) == 6, lines


def wait_for_lines(log: Path, count: int) -> None:
    for _ in range(3000):
        if log.exists() and len(log.read_text().splitlines()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"expected {count} lines in {log}")


# -- large bodies, bounded memory ------------------------------------------------------


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_256_mib_each_way_with_bounded_memory(run_server: RunServer) -> None:
    size = 256 * MiB
    running = run_server(gunicorn("--workers", "1", "--worker-class", "sync"))
    with httpx.Client(base_url=running.url, timeout=60) as client:
        worker = client.get("/fastapi/pid").json()["pid"]
        assert worker in {child.pid for child in psutil.Process(running.proc.pid).children()}
        transfer(client, 4 * MiB)  # warm every code path first
        baseline = peak_rss(worker)
        rss_before = psutil.Process(worker).memory_info().rss
        transfer(client, size)
        growth = peak_rss(worker) - baseline
        rss_after = psutil.Process(worker).memory_info().rss
    rss = f"{rss_before / MiB:.1f} -> {rss_after / MiB:.1f} MiB"
    print(f"256 MiB each way: peak RSS growth {growth / MiB:.2f} MiB, RSS {rss}")
    assert growth <= 4 * MiB


def transfer(client: httpx.Client, size: int) -> None:
    block = pattern(MiB)
    chunks = (block for _ in range(size // MiB))
    upload = client.post(
        "/fastapi/upload", content=chunks, headers={"content-length": str(size)}
    ).json()
    expected = hashlib.sha256()
    for _ in range(size // MiB):
        expected.update(block)
    assert upload == {"size": size, "sha256": expected.hexdigest()}
    digest, received = hashlib.sha256(), 0
    with client.stream("GET", "/fastapi/download", params={"size": size}) as response:
        assert response.headers["content-length"] == str(size)
        for chunk in response.iter_raw(MiB):
            digest.update(chunk)
            received += len(chunk)
    assert (received, digest.hexdigest()) == (size, expected.hexdigest())


# -- more bad input over the wire ------------------------------------------------------


def test_chunked_upload_without_content_length(site: Site) -> None:
    data = os.urandom(3 * MiB + 5)
    parts = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    response = httpx.post(f"{site.url}/fastapi/upload", content=parts, timeout=30)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("server", list(SERVERS))
def test_client_gone_mid_upload(run_server: RunServer, server: str) -> None:
    running = run_server(SERVERS[server])
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        head = b"POST /fastapi/upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\n"
        sock.sendall(head + b"x" * MiB)
    # the server lives on and serves the next request
    assert get_json(f"{running.url}/fastapi/pid")["startups"] == 1
    output = running.stop()
    lines = [line for line in output.splitlines() if "/fastapi/upload" in line]
    # waitress reads the whole body before the app runs: a cut-short request never reaches it
    assert len(lines) == (0 if server == "waitress" else 1), output
    assert all("ended" in line for line in lines), output


def test_chunked_upload_under_wsgiref_is_refused_not_emptied() -> None:
    """wsgiref's simple server gives a chunked upload as the raw socket (no CONTENT_LENGTH,
    no ``wsgi.input_terminated``): the adapter answers 411 instead of running the app with
    an empty body; a sized upload on the same server is echoed."""
    with wsgiref_server(AsgiToWsgi(echo)) as exchange:
        chunked = exchange(CHUNKED_UPLOAD)
        sized = exchange(SIZED_UPLOAD)
    assert chunked.split(b"\r\n", 1)[0].endswith(b"411 Length Required")
    assert sized.split(b"\r\n", 1)[0].endswith(b"200 OK")
    assert sized.endswith(b"\r\n\r\nhello")
