"""CORS, TrustedHost, HTTPSRedirect, RequestId and Compression in real frameworks, wrapped
their own way, behind real servers on 127.0.0.1: Flask (``app.wsgi_app = X(...)``) under
gunicorn, FastAPI (``add_middleware``) under uvicorn, Django's wsgi.py under gunicorn and
its asgi.py under uvicorn. Every check is a real HTTP request over loopback.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunServer
from tests.middleware.apps.five_common import BIG, FIRST, SECOND, SITE

PY = sys.executable
APPS = "tests.middleware.apps"

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


def gunicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", f"{APPS}.{target}",
    ]  # fmt: skip


def uvicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "uvicorn", f"{APPS}.{target}", "--port", str(port), "--no-proxy-headers",
        "--log-level", "warning",
    ]  # fmt: skip


FRAMEWORKS = [
    pytest.param(gunicorn("five_flask:app"), id="flask-gunicorn"),
    pytest.param(uvicorn("five_fastapi:app"), id="fastapi-uvicorn"),
]
DJANGO = [
    pytest.param(gunicorn("five_django_wsgi:application"), id="django-wsgi-gunicorn"),
    pytest.param(uvicorn("five_django_asgi:application"), id="django-asgi-uvicorn"),
]
PREFLIGHT = {"Origin": SITE, "Access-Control-Request-Method": "POST"}


def check_cors(client: httpx.Client) -> None:
    allowed = client.options("/", headers=PREFLIGHT)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert allowed.headers["access-control-allow-methods"] == "GET, POST"
    refused = client.options("/", headers={**PREFLIGHT, "Origin": "https://evil.test"})
    assert (refused.status_code, refused.text) == (400, "Disallowed CORS origin")
    actual = client.get("/", headers={"Origin": SITE})
    assert actual.status_code == 200
    assert actual.headers["access-control-allow-origin"] == SITE
    assert "Origin" in actual.headers["vary"]


def check_trusted_host(client: httpx.Client) -> None:
    refused = client.get("/", headers={"Host": "evil.test"})
    assert (refused.status_code, refused.text) == (400, "Invalid host header")
    malformed = client.get("/", headers={"Host": "127.0.0.1, evil.test"})
    assert (malformed.status_code, malformed.text) == (400, "Invalid host header")
    assert client.get("/", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize("argv", FRAMEWORKS)
def test_cors_and_trusted_host(run_server: RunServer, argv: Callable[[int], Sequence[str]]) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        check_cors(client)
        check_trusted_host(client)


@pytest.mark.parametrize("argv", DJANGO)
def test_django_cors_and_trusted_host(
    run_server: RunServer, argv: Callable[[int], Sequence[str]]
) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").json()["host"].startswith("127.0.0.1:")
        check_cors(client)
        check_trusted_host(client)


@pytest.mark.parametrize("argv", FRAMEWORKS)
def test_https_redirect_and_request_id(
    run_server: RunServer, argv: Callable[[int], Sequence[str]]
) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        moved = client.get("/secure/a%2Fb?x=1&y=%41")
        first = client.get("/id")
        second = client.get("/id", headers={"X-Request-ID": "spoofed"})
    assert moved.status_code == 308
    assert moved.headers["location"] == f"https://127.0.0.1:{server.port}/secure/a%2Fb?x=1&y=%41"
    ids = []
    for response in (first, second):
        rid = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        assert response.text == f"{rid} {rid}"  # the app saw the same id, twice
        ids.append(rid)
    assert ids[0] != ids[1]


@pytest.mark.parametrize("argv", FRAMEWORKS)
def test_gzip_body_decodes(run_server: RunServer, argv: Callable[[int], Sequence[str]]) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        gzipped = client.get("/big", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/big", headers={"Accept-Encoding": "identity"})
        with client.stream("GET", "/big", headers={"Accept-Encoding": "gzip"}) as raw:
            wire = b"".join(raw.iter_raw())
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.content == BIG  # httpx decoded it
    assert "Accept-Encoding" in gzipped.headers["vary"]
    assert zlib.decompress(wire, 16 + zlib.MAX_WBITS) == BIG
    assert len(wire) < len(BIG) // 4
    assert "content-encoding" not in plain.headers
    assert plain.content == BIG


@pytest.mark.parametrize("argv", FRAMEWORKS)
def test_streamed_compression_flushes_each_chunk(
    run_server: RunServer, argv: Callable[[int], Sequence[str]], tmp_path: Path
) -> None:
    """The app makes its second chunk only after the client decoded the first."""
    server = run_server(argv)
    gate = tmp_path / "gate"
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = b""
    url = f"/stream?gate={gate}"
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response,
    ):
        assert response.headers["content-encoding"] == "gzip"
        for raw in response.iter_raw():
            decoded += decoder.decompress(raw)
            if decoded == FIRST:
                gate.touch()
    decoded += decoder.flush()
    assert gate.exists(), "the first chunk never arrived decodable on its own"
    assert decoded == FIRST + SECOND
