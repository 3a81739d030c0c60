"""RequestBuffering under real servers on 127.0.0.1, driven by a raw loopback client.

Servers: uvicorn (FastAPI with ``add_middleware``; Flask through ``WsgiToAsgi`` with
one worker thread, buffered on the ASGI side), hypercorn (FastAPI), gunicorn and
waitress (Flask with
``app.wsgi_app = RequestBuffering(app.wsgi_app)``). The apps are in
``tests.apps.buffering_apps``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bridge import RequestBuffering
from tests.buffering_client import Upload, get, start_upload
from tests.conftest import CHUNKED_UPLOAD, PYTHON, SIZED_UPLOAD, RunServer, Server, wsgiref_server
from tests.memory import PeakRss

pytestmark = pytest.mark.server

MiB = 1024 * 1024
APPS = "tests.apps.buffering_apps"
Argv = Callable[[int], list[str]]


def uvicorn(app: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "uvicorn", f"{APPS}:{app}", "--host", "127.0.0.1",
            "--port", str(port), "--http", "h11", "--no-access-log",
        ]  # fmt: skip

    return argv


def hypercorn(app: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [PYTHON, "-m", "hypercorn", f"{APPS}:{app}", "--bind", f"127.0.0.1:{port}"]

    return argv


def gunicorn(app: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
            "-k", "gthread", "--threads", "2", f"{APPS}:{app}",
        ]  # fmt: skip

    return argv


def waitress(app: str) -> Argv:
    def argv(port: int) -> list[str]:
        return [PYTHON, "-m", "waitress", "--listen", f"127.0.0.1:{port}", f"{APPS}:{app}"]

    return argv


FLASK_ASGI = pytest.param(uvicorn("flask_asgi"), id="uvicorn-flask-wsgi_to_asgi")
FASTAPI = pytest.param(uvicorn("fastapi_app"), id="uvicorn-fastapi")
HYPERCORN = pytest.param(hypercorn("fastapi_app"), id="hypercorn-fastapi")
GUNICORN = pytest.param(gunicorn("flask_wsgi"), id="gunicorn-flask")
WAITRESS = pytest.param(waitress("flask_wsgi"), id="waitress-flask")


def serve(run_server: RunServer, argv: Argv, tmp_path: Path, **env: str) -> tuple[Server, Path]:
    marks = tmp_path / "marks"
    marks.touch()
    server = run_server(argv, env={"BUFFERING_MARKS": str(marks), **env})
    return server, marks


def expect_digest(upload: Upload, body: bytes) -> None:
    reply = upload.response()
    assert reply.status == 200, reply
    assert json.loads(reply.body) == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


# -- slow clients ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [FLASK_ASGI, FASTAPI, HYPERCORN, GUNICORN, WAITRESS])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_slow_drip_upload_reaches_the_app_only_when_complete(
    run_server: RunServer, argv: Argv, chunked: bool, tmp_path: Path
) -> None:
    server, marks = serve(run_server, argv, tmp_path, BUFFERING_TIMEOUT="10")
    body = os.urandom(8 * 16 * 1024)
    pieces = [body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)]
    upload = start_upload(server.port, "/upload", content_length=None if chunked else len(body))
    try:
        for piece in pieces[:-1]:
            upload.send(piece)
            time.sleep(0.02)
        # Everything but the last piece is out: the app has not been entered yet.
        assert get(server.port, "/ping").body == b"pong"
        assert marks.read_text() == ""
        upload.send(pieces[-1])
        upload.end()
        expect_digest(upload, body)
    finally:
        upload.close()
    assert marks.read_text().count("entered") == 1


def test_buffering_keeps_the_only_wsgi_thread_free(run_server: RunServer, tmp_path: Path) -> None:
    """Flask through WsgiToAsgi with ONE worker thread: while three uploads drip in, the
    thread still serves other requests, because no upload has reached the adapter."""
    server, marks = serve(run_server, uvicorn("flask_asgi"), tmp_path, BUFFERING_TIMEOUT="10")
    body = b"x" * 40_000
    uploads = [start_upload(server.port, "/upload", content_length=len(body)) for _ in range(3)]
    try:
        for upload in uploads:
            upload.send(body[:-1])
        for _ in range(3):
            assert get(server.port, "/ping", timeout=10).body == b"pong"
        assert marks.read_text() == ""
        for upload in uploads:
            upload.send(body[-1:])
        for upload in uploads:
            expect_digest(upload, body)
    finally:
        for upload in uploads:
            upload.close()
    assert marks.read_text().count("entered") == 3


@pytest.mark.parametrize("argv", [FLASK_ASGI, FASTAPI, HYPERCORN, GUNICORN])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_stalled_upload_is_answered_408(
    run_server: RunServer, argv: Argv, chunked: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, marks = serve(run_server, argv, tmp_path, BUFFERING_TIMEOUT="0.5")
    upload = start_upload(server.port, "/upload", content_length=None if chunked else 1000)
    try:
        upload.send(b"x" * 100)  # ... and nothing more
        reply = upload.response()
        # Then the server hangs up, although the client still holds the connection
        # open: it does not wait for the rest of the body.
        assert upload.sock.recv(1) == b""
    finally:
        upload.close()
    assert reply.status == 408
    # A WSGI read(n) waits for n bytes (gunicorn), so the count can be lower there.
    assert reply.body.startswith(b"Request Timeout: request body stalled after ")
    if "gunicorn" not in request.node.callspec.id:
        # Under ASGI the middleware tells the server to close. A WSGI app may not (PEP
        # 3333): gunicorn announces keep-alive, then drops the silent connection.
        assert reply.header(b"connection") == b"close"
    assert marks.read_text() == ""
    assert "408 Request Timeout: request body stalled after" in server.stop()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Poll ``condition`` until it holds or ``seconds`` pass (a wait, not a timed assertion)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def idle_fds(pid: int) -> int:
    """The server's open descriptors once the connections of earlier requests are closed."""
    counts = [open_fds(pid)]
    for _ in range(100):  # settled when two samples 50 ms apart agree
        time.sleep(0.05)
        counts.append(open_fds(pid))
        if counts[-1] == counts[-2]:
            break
    return counts[-1]


@pytest.mark.parametrize("argv", [FLASK_ASGI, FASTAPI, GUNICORN])
def test_client_gone_mid_body_leaves_no_spool_file(
    run_server: RunServer, argv: Argv, tmp_path: Path
) -> None:
    server, marks = serve(run_server, argv, tmp_path, BUFFERING_MAX="8m", BUFFERING_MEMORY="64k")
    pid = int(get(server.port, "/pid").body)
    baseline = idle_fds(pid)
    upload = start_upload(server.port, "/upload", content_length=4 * MiB)
    upload.send(b"x" * (2 * MiB))  # spooled to a file past the first 64 KiB ...
    # The server holds the upload's connection (and soon a spool file) from here on.
    wait_until(lambda: open_fds(pid) > baseline)
    upload.close()  # ... and the client is gone
    wait_until(lambda: open_fds(pid) <= baseline)  # the server noticed and cleaned up
    assert open_fds(pid) <= baseline
    assert marks.read_text() == ""
    assert "client disconnected mid-body" in server.stop()


# -- oversize bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [FLASK_ASGI, FASTAPI, HYPERCORN, GUNICORN])
def test_declared_oversize_is_413_before_any_body_is_sent(
    run_server: RunServer, argv: Argv, tmp_path: Path
) -> None:
    server, marks = serve(run_server, argv, tmp_path)
    upload = start_upload(
        server.port, "/upload", content_length=1024**3, extra_headers=(("Expect", "100-continue"),)
    )
    try:
        reply = upload.response()  # not a byte of the body was sent
    finally:
        upload.close()
    assert reply.status == 413
    assert (
        reply.body
        == b"Content Too Large: declared Content-Length 1073741824 is over the limit 1048576\n"
    )
    assert marks.read_text() == ""


def test_waitress_reads_the_body_itself_then_413(run_server: RunServer, tmp_path: Path) -> None:
    """waitress buffers every body before calling the app, so the 413 comes after it."""
    server, marks = serve(run_server, waitress("flask_wsgi"), tmp_path)
    upload = start_upload(server.port, "/upload", content_length=2 * MiB)
    try:
        upload.send(b"x" * 2 * MiB)
        reply = upload.response()
    finally:
        upload.close()
    assert reply.status == 413
    assert marks.read_text() == ""


def flood(upload: Upload, total: int) -> None:
    """Send up to ``total`` bytes of chunked body; stop when the server closes."""
    chunk = b"z" * MiB
    try:
        while upload.sent < total:
            upload.send(chunk)
        upload.end()
    except OSError:
        pass  # the server stopped reading at the cap and closed the connection


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", [FLASK_ASGI, FASTAPI, HYPERCORN, GUNICORN])
def test_one_gib_chunked_upload_is_cut_at_the_cap_with_bounded_memory(
    run_server: RunServer, argv: Argv, tmp_path: Path
) -> None:
    server, marks = serve(run_server, argv, tmp_path, BUFFERING_MAX="16m")
    pid = int(get(server.port, "/pid").body)
    workers = psutil.Process(pid)  # under gunicorn /pid names the worker
    baseline = workers.memory_info().rss
    upload = start_upload(server.port, "/upload")
    sender = threading.Thread(target=flood, args=(upload, 1024 * MiB), daemon=True)
    with PeakRss(pid) as rss:
        sender.start()
        try:
            reply = upload.response(timeout=60)
        finally:
            sender.join(60)
            upload.close()
    growth = (rss.peak - baseline) / MiB
    print(f"client sent {upload.sent / MiB:.0f} MiB of 1024; server RSS growth {growth:.1f} MiB")
    assert reply.status == 413
    assert upload.sent < 128 * MiB  # the server stopped reading at the 16 MiB cap
    assert growth < 48
    assert marks.read_text() == ""


# -- WSGI-side RequestBuffering in front of AsgiToWsgi under gunicorn (issue 13) ----------

GUNICORN_ASGI = gunicorn("asgi_behind_wsgi")


def test_bad_chunk_size_under_gunicorn_is_400_with_one_log_line(
    run_server: RunServer, tmp_path: Path
) -> None:
    server, _ = serve(run_server, GUNICORN_ASGI, tmp_path)
    upload = start_upload(server.port, "/upload")
    try:
        upload.sock.sendall(b"zz\r\nhello\r\n0\r\n\r\n")
        reply = upload.response()
    finally:
        upload.close()
    assert reply.status == 400, reply
    assert reply.body.startswith(b"Bad Request: request body could not be read: ")
    output = server.stop()
    assert output.count("400 Bad Request: request body could not be read") == 1, output
    assert "Traceback" not in output, output


def test_body_deadline_under_gunicorn_stops_a_drip(run_server: RunServer, tmp_path: Path) -> None:
    server, _ = serve(
        run_server, GUNICORN_ASGI, tmp_path, BUFFERING_TIMEOUT="5", BUFFERING_DEADLINE="1"
    )
    assert get(server.port, "/ping").status == 200  # the worker is up: the drip starts now
    upload = start_upload(server.port, "/upload", content_length=10)
    try:
        for _ in range(10):  # each wait (0.3 s) is well within body_timeout
            upload.send(b"x")
            time.sleep(0.3)
        reply = upload.response()
    finally:
        upload.close()
    assert reply.status == 408, reply
    assert reply.body.startswith(
        b"Request Timeout: request body not complete within body_deadline 1 s"
    )


def _echo_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_chunked_upload_under_wsgiref_is_411_not_an_empty_body() -> None:
    """wsgiref gives a chunked upload as the raw socket: buffer mode cannot read it, so it
    answers 411 (and logs it) instead of replaying an empty body to the app."""
    with wsgiref_server(RequestBuffering(_echo_wsgi)) as exchange:
        chunked = exchange(CHUNKED_UPLOAD)
        sized = exchange(SIZED_UPLOAD)
    assert chunked.split(b"\r\n", 1)[0].endswith(b"411 Length Required")
    assert sized.endswith(b"\r\n\r\nhello")
