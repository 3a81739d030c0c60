"""ProxyHeaders behind a proxy that connects over a Unix socket (nginx's ``proxy_pass
http://unix:/run/app.sock``, the setup gunicorn's deployment guide shows).

A Unix socket peer has no address: gunicorn gives ``REMOTE_ADDR=""``, uvicorn, hypercorn
and daphne ``scope["client"] = None`` (uvicorn with ``scope["server"] = [path, None]``),
waitress ``REMOTE_ADDR="localhost"``. The ``"unix"`` entry of ``trusted`` (in the
default) trusts exactly those peers, as gunicorn's own forwarded-header handling does
for a peer without an address. Each server here runs the apps of the nginx tests, wrapped in
ProxyHeaders with its default ``trusted``, on a socket in the test's directory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import ProxyHeaders
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi
from tests.conftest import Server, start_server
from tests.nginx import StartNginx, docs_nginx_block, start_nginx

__all__ = ("start_nginx",)

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

PY = sys.executable
APPS = "tests.middleware.apps.nginx_apps"
FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def _waitress(path: Path) -> list[str]:
    code = (
        "from waitress import serve; from tests.middleware.apps.nginx_apps import flask_app; "
        f"serve(flask_app, unix_socket={str(path)!r}, clear_untrusted_proxy_headers=False)"
    )
    return [PY, "-c", code]


SERVERS: list[Any] = [
    pytest.param(
        lambda p: [PY, "-m", "gunicorn", "-b", f"unix:{p}", "-w", "1", f"{APPS}:flask_app"],
        id="flask-gunicorn",
    ),
    pytest.param(_waitress, id="flask-waitress"),
    pytest.param(
        lambda p: [
            PY,
            "-m",
            "uvicorn",
            f"{APPS}:starlette_app",
            "--uds",
            str(p),
            "--no-proxy-headers",
            "--log-level",
            "warning",
        ],
        id="starlette-uvicorn",
    ),
    pytest.param(
        lambda p: [PY, "-m", "hypercorn", "-b", f"unix:{p}", f"{APPS}:starlette_app"],
        id="starlette-hypercorn",
    ),
    pytest.param(
        lambda p: [PY, "-m", "daphne", "-u", str(p), f"{APPS}:starlette_app"],
        id="starlette-daphne",
    ),
]


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[Callable[[Callable[[Path], Sequence[str]]], Path]]:
    """``unix_server(argv_for(path))``: a server on a Unix socket; always stopped."""
    servers: list[Server] = []
    tmp_path.chmod(0o755)  # nginx's worker (another user when run as root) reaches the socket

    def start(argv_for: Callable[[Path], Sequence[str]]) -> Path:
        path = tmp_path / f"app{len(servers)}.sock"
        servers.append(start_server(argv_for(path), path))
        path.chmod(0o777)  # waitress makes it 0600, daphne as the umask says
        return path

    yield start
    for server in servers:
        server.stop()


def _get_over(path: Path, headers: dict[str, str]) -> Any:
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://localhost", timeout=10) as client:
        response = client.get("/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("argv_for", SERVERS)
def test_a_proxy_on_the_unix_socket_is_trusted_by_default(
    unix_server: Callable[[Callable[[Path], Sequence[str]]], Path],
    argv_for: Callable[[Path], Sequence[str]],
) -> None:
    seen = _get_over(unix_server(argv_for), FORWARDED)
    assert seen["client"] == "203.0.113.9"
    assert seen["scheme"] == "https"
    assert seen["forwarded"]["x-forwarded-for"] == "203.0.113.9"
    assert seen["original"]["client"] in (None, ["localhost", 0])  # waitress: "localhost"


@pytest.mark.nginx
@pytest.mark.parametrize("argv_for", [SERVERS[0], SERVERS[2]])
def test_nginx_proxy_pass_to_a_unix_socket(
    unix_server: Callable[[Callable[[Path], Sequence[str]]], Path],
    start_nginx: StartNginx,
    argv_for: Callable[[Path], Sequence[str]],
) -> None:
    """nginx (TLS on loopback) -> ``proxy_pass http://unix:...`` -> the app server: the app
    sees the client nginx saw and https, not what the client wrote in its own headers."""
    nginx = start_nginx([docs_nginx_block("x-forwarded")], unix_server(argv_for))
    transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=nginx.client_ssl)
    with httpx.Client(transport=transport, base_url=nginx.url, timeout=10) as client:
        response = client.get("/", headers={"X-Forwarded-For": "198.51.100.66"})
    assert response.status_code == 200, (response.text, nginx.error_log()[-2000:])
    seen = response.json()
    assert seen["client"] == "127.0.0.2"  # nginx's entry, right of the client's own
    assert seen["scheme"] == "https"
    assert seen["forwarded"]["x-forwarded-for"] == "198.51.100.66, 127.0.0.2"


# -- which peers "unix" trusts, under both interfaces ---------------------------------

FORWARDED_LINES = [
    (b"host", b"localhost"),
    (b"x-forwarded-for", b"203.0.113.9"),
    (b"x-forwarded-proto", b"https"),
]


def _client_seen(call: Any, trusted: Any, request: Request) -> Any:
    inner = InnerApp()
    app = inner.wsgi() if call is call_wsgi else inner.asgi()
    wrapped = ProxyHeaders(app) if trusted is None else ProxyHeaders(app, trusted=trusted)
    seen = call(wrapped, request).seen
    assert seen is not None
    return seen.head.client, seen.head.scheme


UNIX_PEER = Request(headers=FORWARDED_LINES, client=None, server=None)


@pytest.mark.parametrize("call", [call_wsgi, call_asgi], ids=["wsgi", "asgi"])
def test_unix_entry_decides_for_a_peer_without_an_address(call: Any) -> None:
    assert _client_seen(call, None, UNIX_PEER) == (("203.0.113.9", 0), "https")
    assert _client_seen(call, "unix", UNIX_PEER) == (("203.0.113.9", 0), "https")
    assert _client_seen(call, ["unix:"], UNIX_PEER) == (("203.0.113.9", 0), "https")
    assert _client_seen(call, ["127.0.0.1"], UNIX_PEER) == (None, "http")
    assert _client_seen(call, [], UNIX_PEER) == (None, "http")
    waitress = Request(headers=FORWARDED_LINES, client=("localhost", 0))  # its unix peer
    assert _client_seen(call, None, waitress) == (("203.0.113.9", 0), "https")
    assert _client_seen(call, ["::1"], waitress) == (("localhost", 0), "http")


def test_localhost_in_a_forwarding_chain_is_not_a_trusted_hop() -> None:
    """waitress names a Unix socket peer "localhost"; inside X-Forwarded-For the same word
    is only what some client wrote, so the chain walk does not skip it as a trusted hop."""
    chain = [(b"host", b"localhost"), (b"x-forwarded-for", b"203.0.113.9, localhost")]
    seen = call_wsgi(ProxyHeaders(InnerApp().wsgi()), Request(headers=chain)).seen
    assert seen is not None
    assert seen.head.client == ("127.0.0.1", 50000)  # an invalid entry: nothing applied
