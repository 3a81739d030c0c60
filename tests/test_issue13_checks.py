"""Checks for issue 13's closing note that no earlier test made in the issue's own terms.

* item 6: ``RequestBuffering(AsgiToWsgi(app))`` keeps its cap for a body the WSGI server
  delivers with neither Content-Length nor Transfer-Encoding (``wsgi.input_terminated``).
* item 9 and the probe's 100-continue point: docs/deployment.md names each server, the
  setting that fixes each server specific and who sends "100 Continue".
* item 8: a 1 byte/s drip under hypercorn-trio through WSGI-side RequestBuffering inside
  WsgiToAsgi reaches the app (200), not a 408 "stalled after 0 bytes".
* item 1c under uWSGI: a master that served through bridge before forking (no
  ``--lazy-apps``) has workers that answer, exit on SIGTERM and print nothing.
* the probe: slow uploads through WsgiToAsgi(RequestBuffering(app)) on trio leave no
  pile of idle worker threads behind.
* a HEAD answer under waitress (AsgiToWsgi) puts no body on a keep-alive connection.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest
import trio

from bridge import AsgiToWsgi, RequestBuffering, WsgiToAsgi
from tests.buffering_client import get, start_upload
from tests.conftest import PYTHON, RunServer, free_port, start_server


def _unframed_environ(body: bytes) -> dict[str, Any]:
    """An HTTP/1.1 POST with no framing header whose body the server still delivers."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/echo",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    return environ


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    iterable: Any = validator(app)(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        iterable.close()
    return statuses[0], body


def _echo_counting(received: list[int]) -> Any:
    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        received.append(total)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"%d" % total})

    return echo


def test_unframed_body_over_the_cap_never_reaches_an_asgi_app_behind_asgi_to_wsgi() -> None:
    received: list[int] = []
    with AsgiToWsgi(_echo_counting(received)) as adapter:
        capped = RequestBuffering(adapter, max_body_size=1000)
        status, body = _call(capped, _unframed_environ(b"x" * 5000))
        assert status.startswith("413"), (status, body)
        assert received == []  # the app never ran: the cap held before it
        status, body = _call(capped, _unframed_environ(b"y" * 600))
    assert (status, body) == ("200 OK", b"600")
    assert received == [600]


# -- "Also from the probe": HEAD under waitress keeps the keep-alive connection clean ----


def _read_head(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """One response head from ``sock`` (after what ``buffer`` already holds) and the rest."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {buffer!r}"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


@pytest.mark.server
def test_a_head_answer_under_waitress_leaves_the_next_keep_alive_response_intact() -> None:
    port = free_port()
    server = start_server([PYTHON, "-m", "tests.apps.matrix_waitress", str(port)], port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            # FastAPI answers HEAD on a GET route 405 with a JSON body: the body must stay off
            sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, rest = _read_head(sock, b"")
            assert head.split(b" ", 2)[1] in (b"200", b"405"), head
            assert b"content-length" in head.lower()
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, rest = _read_head(sock, rest)
            assert head.startswith(b"HTTP/1.1 200 "), head  # not the HEAD answer's body
            while len(rest) < len(b"hello"):
                rest += sock.recv(65536)
        assert rest == b"hello"
    finally:
        server.stop()


# -- item 8: a drip through WSGI-side RequestBuffering inside WsgiToAsgi, hypercorn-trio ---


@pytest.mark.server
def test_a_one_byte_per_second_drip_under_hypercorn_trio_reaches_the_app(
    run_server: RunServer, tmp_path: Path
) -> None:
    """body_timeout=2 bounds each wait for a piece, never the whole body."""
    marks = tmp_path / "marks"
    marks.touch()

    def argv(port: int) -> list[str]:
        return [
            PYTHON, "-m", "hypercorn", "-k", "trio", "tests.apps.issue13_apps:wsgi_buffered",
            "--bind", f"127.0.0.1:{port}",
        ]  # fmt: skip

    server = run_server(argv, env={"BUFFERING_MARKS": str(marks), "BUFFERING_TIMEOUT": "2"})
    assert get(server.port, "/ping").body == b"pong"
    body = b"abcde"
    upload = start_upload(server.port, "/upload", content_length=len(body))
    try:
        for byte in body:
            upload.send(bytes([byte]))
            time.sleep(1)
        reply = upload.response()
    finally:
        upload.close()
    assert reply.status == 200, reply
    assert json.loads(reply.body) == {"size": 5, "sha256": hashlib.sha256(body).hexdigest()}


# -- item 9, the probe's 100-continue point, "Done means": docs/deployment.md -------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_deployment_page_states_what_holds_per_server_with_the_fixing_settings() -> None:
    from tests.test_server_matrix import SERVERS

    page = (DOCS / "deployment.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    first_cells = " ".join(row.split("|")[1].lower() for row in rows)
    families = {name.split("-")[0] for name in SERVERS} | {"mod_wsgi"}
    for family in families - {"gevent"}:  # gevent's row is named "gevent.pywsgi"
        assert family in first_cells, family
    assert "gevent.pywsgi" in first_cells
    # item 9: each server specific with the setting that fixes it
    for setting in (
        "--http-socket",  # uWSGI's --http router resetting early 413s
        "chunked upload",  # uWSGI: reaches the app empty; nginx request buffering fixes it
        "--chunked-request",  # mod_wsgi's 411
        "--lazy-apps",  # uWSGI master: lifespan shutdown
        "--interface asgi",  # granian WSGI: lifespan shutdown never runs
    ):
        assert setting in page, setting
    # the probe: who sends "100 Continue" under each server
    (header,) = [row for row in rows if "100-continue" in row.lower()]
    expect_rows = rows[rows.index(header) + 1 :]  # the |---| line is not a "| " row
    said = {row.split("|")[1].strip(): row.split("|")[4] for row in expect_rows if "|" in row}
    for server in ("uvicorn", "hypercorn", "gunicorn", "waitress"):
        (cell,) = [text for name, text in said.items() if name.startswith(server)]
        assert "100" in cell, (server, cell)
    # the per-server table of docs/buffering.md is folded into deployment.md
    assert "deployment.md#request-bodies-under-each-server" in (DOCS / "buffering.md").read_text()
    assert "## Request bodies under each server" in page
    assert "middleware/proxy-headers.md" in page  # where the nginx configurations are


# -- item 1c under uWSGI: the master serves through bridge, then forks (no --lazy-apps) ---


@pytest.mark.server
@pytest.mark.timeout(90)
def test_a_uwsgi_master_that_served_through_bridge_forks_working_quiet_workers() -> None:
    port = free_port()
    argv = [
        PYTHON, "-c", "import pyuwsgi, sys; pyuwsgi.run(sys.argv[1:])",
        "--http-socket", f"127.0.0.1:{port}", "--module", "tests.apps.matrix_apps:fastapi_wsgi",
        "--master", "--processes", "2", "--threads", "4", "--enable-threads", "--die-on-term",
        "--need-app", "--disable-logging",
    ]  # fmt: skip
    server = start_server(argv, port, env={"MATRIX_SERVE_AT_IMPORT": "1"})
    try:
        with httpx.Client(
            base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            answers = [client.get(path) for path in ["/hello", "/sync"] * 4]
        assert [r.status_code for r in answers] == [200] * 8
        assert [r.text for r in answers] == ["hello", "42"] * 4
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(20)  # a worker hung in take_gil would keep the master waiting
    finally:
        output = server.stop()
    assert "Traceback" not in output, output
    assert "Exception ignored" not in output, output


# -- the probe: slow uploads under trio leave no idle worker threads behind --------------


def _drip_upload_app() -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(body)]

    return WsgiToAsgi(RequestBuffering(app, body_timeout=5))


def test_slow_uploads_under_trio_leave_no_idle_threads_behind() -> None:
    """60 concurrent 4-byte drips through WsgiToAsgi(RequestBuffering(app)) on trio; after
    them the process's thread count settles back (the probe saw 59 idle threads remain)."""
    asgi = _drip_upload_app()
    uploads = 60
    statuses: list[int] = []
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/", "raw_path": b"/", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", b"4")],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip

    async def one() -> None:
        dripped = 0

        async def receive() -> dict[str, Any]:
            nonlocal dripped
            if dripped == 4:
                await trio.sleep(60)  # no disconnect before the response is sent
            await trio.sleep(0.1)
            dripped += 1
            return {"type": "http.request", "body": b"x", "more_body": dripped < 4}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await asgi(scope, receive, send)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(uploads):
                nursery.start_soon(one)

    baseline = threading.active_count()
    trio.run(main)
    assert statuses == [200] * uploads
    deadline = time.monotonic() + 40  # a hang check: idle threads retire within seconds
    while threading.active_count() > baseline + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= baseline + 10, [t.name for t in threading.enumerate()]
