"""Real frameworks, wrapped their own way, behind real servers on 127.0.0.1.

The loopback client plays the proxy: 127.0.0.1 is trusted by default, so the
forwarded headers it sends are applied by ProxyHeaders, and SecurityHeaders
decides HSTS from the scheme ProxyHeaders resolved. The servers' own
forwarded-header handling is switched off so bridge's is what is tested.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from tests.conftest import RunServer

PY = sys.executable
APPS = "tests.middleware.apps"

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]


def gunicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
        "--forwarded-allow-ips", "192.0.2.1", f"{APPS}.{target}",
    ]  # fmt: skip


def waitress(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [PY, "-m", f"{APPS}.serve_waitress", f"{APPS}.{target}", str(port)]


def uvicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "uvicorn", f"{APPS}.{target}", "--port", str(port), "--no-proxy-headers",
        "--log-level", "warning", "--ws", "wsproto",
    ]  # fmt: skip


def hypercorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [PY, "-m", "hypercorn", f"{APPS}.{target}", "--bind", f"127.0.0.1:{port}"]


SERVERS = [
    pytest.param(gunicorn("flask_app:app"), "flask", id="flask-gunicorn"),
    pytest.param(waitress("flask_app:app"), "flask", id="flask-waitress"),
    pytest.param(gunicorn("django_wsgi:application"), "django", id="django-wsgi-gunicorn"),
    pytest.param(waitress("django_wsgi:application"), "django", id="django-wsgi-waitress"),
    pytest.param(uvicorn("django_asgi:application"), "django", id="django-asgi-uvicorn"),
    pytest.param(uvicorn("starlette_app:fastapi_app"), "starlette", id="fastapi-uvicorn"),
    pytest.param(uvicorn("starlette_app:starlette_app"), "starlette", id="starlette-uvicorn"),
    pytest.param(hypercorn("starlette_app:starlette_app"), "starlette", id="starlette-hypercorn"),
]

FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 127.0.0.1",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
}


@pytest.mark.parametrize(("argv", "framework"), SERVERS)
def test_forwarded_request_through_a_real_server(
    run_server: RunServer, argv: Callable[[int], Sequence[str]], framework: str
) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        proxied = client.get("/", headers=FORWARDED)
        direct = client.get("/")
        bad = client.get("/", headers={"X-Forwarded-Proto": "javascript", "X-Forwarded-For": "x"})
    assert proxied.status_code == 200, server.stop()
    seen = proxied.json()
    assert seen["client"] == "203.0.113.9"
    assert seen["scheme"] == "https"
    assert seen["url"].startswith("https://example.com/")
    hsts = proxied.headers["strict-transport-security"]
    assert hsts == "max-age=63072000; includeSubDomains; preload"
    nonce = seen["nonce"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce)
    assert f"'nonce-{nonce}'" in proxied.headers["content-security-policy"]

    assert direct.status_code == 200
    assert direct.json()["client"] == "127.0.0.1"
    assert direct.json()["scheme"] == "http"
    assert "strict-transport-security" not in direct.headers
    assert direct.json()["nonce"] != nonce

    assert bad.status_code == 200
    assert bad.json()["scheme"] == "http"
    assert bad.json()["client"] == "127.0.0.1"
    if framework == "flask":
        assert "x-powered-by" not in proxied.headers  # CustomHeaders(remove_response=[...])


def test_flask_prefix_and_exempt_path(run_server: RunServer) -> None:
    server = run_server(gunicorn("flask_app:app"))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        prefixed = client.get("/", headers={"X-Forwarded-Prefix": "/shop"})
        health = client.get("/healthz")
    assert prefixed.json()["script_root"] == "/shop"
    assert prefixed.json()["url"] == f"http://127.0.0.1:{server.port}/shop/"
    assert health.text == "ok"
    assert "x-frame-options" not in health.headers


def _websocket_handshake(port: int, headers: dict[str, str]) -> Any:
    import json

    from wsproto import WSConnection
    from wsproto.connection import ConnectionType
    from wsproto.events import AcceptConnection, Message, Request

    ws = WSConnection(ConnectionType.CLIENT)
    extra = [(k.encode(), v.encode()) for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(ws.send(Request(host="127.0.0.1", target="/ws", extra_headers=extra)))
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
    assert accepted
    return json.loads(text)


def test_websocket_through_uvicorn_gets_forwarded_client(run_server: RunServer) -> None:
    server = run_server(uvicorn("starlette_app:starlette_app"))
    seen = _websocket_handshake(server.port, FORWARDED)
    assert seen == {"client": "203.0.113.9", "scheme": "wss"}


@pytest.mark.parametrize(("argv", "framework"), SERVERS)
def test_a_path_that_is_not_utf8_is_the_same_400_everywhere(
    run_server: RunServer, argv: Callable[[int], Sequence[str]], framework: str
) -> None:
    """``/caf%E9`` (latin-1, not UTF-8): a WSGI server gives PATH_INFO the byte, the ASGI
    servers a replacement character in ``path`` and the escape in ``raw_path``; the
    middleware answers the same 400 whichever it is, before the app runs."""
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        bad = client.get("/caf%E9")
        fine = client.get("/caf%C3%A9")  # é in UTF-8: the app's own answer (a 404 here)
    assert bad.status_code == 400, server.stop()
    assert bad.text == "Bad Request: PATH_INFO is not valid UTF-8: '/caf\xe9'\n"
    assert fine.status_code != 400
