"""ProxyHeaders behind a real nginx, with the configurations users copy (from the docs).

nginx listens with TLS on 127.0.0.1 and proxies to gunicorn (Flask, sync worker) or
uvicorn (Starlette), both wrapped in ProxyHeaders with its default ``trusted``
(loopback). The test client connects from 127.0.0.2: an address on the same
machine that is *not* trusted, as a real client would be, so a forwarded header
the client writes itself must never reach what the app believes. The servers' own
forwarded-header handling is off, as the docs say.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.conftest import RunServer, Server
from tests.nginx import Nginx, StartNginx, docs_nginx_block, start_nginx

__all__ = ("start_nginx",)

pytestmark = [pytest.mark.server, pytest.mark.nginx, pytest.mark.timeout(90)]

PY = sys.executable
APPS = "tests.middleware.apps.nginx_apps"
CLIENT_ADDRESS = "127.0.0.2"
#: What a client tries to make the app believe; nginx and ProxyHeaders must not let it.
SPOOFED = {
    "X-Forwarded-For": "203.0.113.66",
    "X-Forwarded-Proto": "http",
    "X-Real-IP": "203.0.113.77",
    "Forwarded": "for=203.0.113.88;proto=https",
}


def gunicorn(port: int) -> Sequence[str]:
    return [
        PY, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
        "--forwarded-allow-ips", "192.0.2.1", f"{APPS}:flask_app",
    ]  # fmt: skip


def uvicorn(port: int) -> Sequence[str]:
    return [
        PY, "-m", "uvicorn", f"{APPS}:starlette_app", "--port", str(port), "--no-proxy-headers",
        "--log-level", "warning", "--ws", "wsproto",
    ]  # fmt: skip


SERVERS = [
    pytest.param(gunicorn, id="flask-gunicorn"),
    pytest.param(uvicorn, id="starlette-uvicorn"),
]


def _behind_nginx(
    run_server: RunServer,
    start_nginx: StartNginx,
    argv: Callable[[int], Sequence[str]],
    blocks: list[str],
    mode: str,
) -> tuple[Server, Nginx]:
    app = run_server(argv, env={"PROXY_MODE": mode})
    return app, start_nginx([docs_nginx_block(name) for name in blocks], app.port)


def _client(base_url: str, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=verify)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def _get(nginx: Nginx, headers: dict[str, str]) -> Any:
    with _client(nginx.url, nginx.client_ssl) as client:
        response = client.get("/", headers=headers)
    assert response.status_code == 200, (response.text, nginx.error_log()[-2000:])
    return response.json()


def _direct_get(app: Server) -> Any:
    """The app reached without nginx, from the untrusted address, with forged headers."""
    with _client(app.url) as client:
        response = client.get("/", headers={**SPOOFED, "X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    return response.json()


NO_FORWARDED_HEADERS = dict.fromkeys(
    ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip"]
)


@pytest.mark.parametrize("argv", SERVERS)
def test_x_forwarded_for_and_proto(
    run_server: RunServer, start_nginx: StartNginx, argv: Callable[[int], Sequence[str]]
) -> None:
    app, nginx = _behind_nginx(run_server, start_nginx, argv, ["x-forwarded"], "x-forwarded")
    seen = _get(nginx, SPOOFED)
    assert seen["client"] == CLIENT_ADDRESS  # nginx's entry, not the client's own
    assert seen["scheme"] == "https"  # nginx's $scheme replaced the client's "http"
    assert seen["host"] == "localhost"  # Host $host
    assert seen["original"]["client"][0] == "127.0.0.1"  # nginx, as the server saw it
    assert seen["original"]["scheme"] == "http"
    assert seen["forwarded"] == {
        **NO_FORWARDED_HEADERS,  # Forwarded and X-Real-IP are not read in this mode: removed
        "x-forwarded-for": f"203.0.113.66, {CLIENT_ADDRESS}",
        "x-forwarded-proto": "https",
    }

    direct = _direct_get(app)
    assert direct["client"] == CLIENT_ADDRESS
    assert direct["scheme"] == "http"
    assert direct["original"] is None
    assert direct["forwarded"] == NO_FORWARDED_HEADERS


@pytest.mark.parametrize("argv", SERVERS)
def test_x_real_ip(
    run_server: RunServer, start_nginx: StartNginx, argv: Callable[[int], Sequence[str]]
) -> None:
    app, nginx = _behind_nginx(run_server, start_nginx, argv, ["x-real-ip"], "x-real-ip")
    seen = _get(nginx, {**SPOOFED, "X-Forwarded-Proto": "https"})
    assert seen["client"] == CLIENT_ADDRESS  # $remote_addr replaced the client's X-Real-IP
    # the block sets no X-Forwarded-Proto: the client's own passed nginx, and is not believed
    assert seen["scheme"] == "http"
    assert seen["host"] == "localhost"
    assert seen["original"]["client"][0] == "127.0.0.1"
    assert seen["original"]["scheme"] == "http"
    assert seen["forwarded"] == {**NO_FORWARDED_HEADERS, "x-real-ip": CLIENT_ADDRESS}

    direct = _direct_get(app)
    assert (direct["client"], direct["scheme"]) == (CLIENT_ADDRESS, "http")
    assert direct["forwarded"] == NO_FORWARDED_HEADERS


def _websocket_over_tls(nginx: Nginx, headers: dict[str, str]) -> Any:
    from wsproto import WSConnection
    from wsproto.connection import ConnectionType
    from wsproto.events import AcceptConnection, Message, Request

    ws = WSConnection(ConnectionType.CLIENT)
    extra = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw = socket.create_connection(
        ("127.0.0.1", nginx.port), timeout=10, source_address=(CLIENT_ADDRESS, 0)
    )
    with nginx.client_ssl.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(ws.send(Request(host="localhost", target="/ws", extra_headers=extra)))
        accepted, text = False, ""
        while not text:
            data = sock.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                accepted = accepted or isinstance(event, AcceptConnection)
                if isinstance(event, Message):
                    text += str(event.data)
    assert accepted, nginx.error_log()[-2000:]
    return json.loads(text)


def test_websocket_upgrade_block(run_server: RunServer, start_nginx: StartNginx) -> None:
    _, nginx = _behind_nginx(
        run_server, start_nginx, uvicorn, ["x-forwarded", "websocket"], "x-forwarded"
    )
    seen = _websocket_over_tls(nginx, SPOOFED)
    assert seen["client"] == CLIENT_ADDRESS
    assert seen["scheme"] == "wss"
    assert seen["original"]["scheme"] == "ws"
    assert seen["original"]["client"][0] == "127.0.0.1"


def _chunks(size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        chunk = b"x" * min(8192, size - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize("argv", SERVERS)
def test_streaming_upload_capped_by_request_buffering(
    run_server: RunServer, start_nginx: StartNginx, argv: Callable[[int], Sequence[str]]
) -> None:
    _, nginx = _behind_nginx(
        run_server, start_nginx, argv, ["x-forwarded", "streaming-upload"], "x-forwarded"
    )
    with _client(nginx.url, nginx.client_ssl) as client:
        small = client.post("/upload", content=_chunks(40_000))  # chunked, under the cap
        # chunked, crossing the cap: RequestBuffering has read 64k when it answers. (A
        # declared length over the cap is answered before nginx has passed any of the
        # body on, and nginx then sometimes cuts the 413 short: see the docs.)
        streamed = client.post("/upload", content=_chunks(80_000))
    assert small.status_code == 200, (small.text, nginx.error_log()[-2000:])
    assert small.json() == {"size": 40_000, "client": CLIENT_ADDRESS}
    # 413 from RequestBuffering (64k), not from nginx, whose client_max_body_size is 0
    assert streamed.status_code == 413, (streamed.text, nginx.error_log()[-2000:])
    assert "nginx" not in streamed.text
