"""TrustedHost: Django's ALLOWED_HOSTS side by side, configuration errors, logging, frameworks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.http.request import (  # type: ignore[import-untyped]
    split_domain_port,
    validate_host,
)
from fastapi import FastAPI
from flask import Flask
from starlette.middleware.trustedhost import TrustedHostMiddleware

from bridge import TrustedHost
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi
from tests.middleware.asgi_client import asgi_request

# Patterns in the dialect Django and bridge share (exact names, ".domain", "*", IPv6 literals).
PATTERNS = ["example.com", ".example.net", "[::1]", "127.0.0.1", "xn--caf-dma.example"]
HOSTS = [
    "example.com",
    "EXAMPLE.COM",
    "example.com:8000",
    "example.com.",
    "example.com..",
    "sub.example.com",
    "example.net",
    "a.b.example.net:1",
    "notexample.net",
    "[::1]",
    "[::1]:80",
    "[::2]",
    "[::1",
    "127.0.0.1:5000",
    "127.0.0.2",
    "xn--caf-dma.example",
    "café.example",
    "example.com:",
    "example.com:abc",
    "example.com, evil.com",
    "example.com evil.com",
    "exa_mple.com",
    "",
    ".",
    "-",
    "example.com/evil",
    "evil.com#example.com",
    "a" * 300,
]


def _django_allows(host: str, patterns: list[str]) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, patterns)


def _bridge_status(host: str, patterns: list[str]) -> int:
    app = TrustedHost(InnerApp().wsgi(), allowed_hosts=patterns, www_redirect=False)
    return call_wsgi(app, Request(headers=[(b"host", host.encode("utf-8"))])).status


@pytest.mark.parametrize("patterns", [PATTERNS, ["*"]], ids=["listed", "star"])
@pytest.mark.parametrize("host", HOSTS)
def test_same_verdict_as_django_validate_host(host: str, patterns: list[str]) -> None:
    expected = 200 if _django_allows(host, patterns) else 400
    assert _bridge_status(host, patterns) == expected


@pytest.mark.parametrize(
    ("host", "status"),
    [("a.example.com", 200), ("example.com", 400), ("example.com:8000", 400), ("evil.com", 400)],
)
def test_star_dot_wildcard_matches_starlette(host: str, status: int) -> None:
    """ "*.example.com" is Starlette's wildcard: subdomains only."""
    ours = TrustedHost(InnerApp().asgi(), allowed_hosts=["*.example.com"])
    theirs = TrustedHostMiddleware(InnerApp().asgi(), allowed_hosts=["*.example.com"])
    request = Request(headers=[(b"host", host.encode())])
    assert call_asgi(ours, request).status == status
    assert call_asgi(theirs, request).status == status


def test_www_redirect_matches_starlette() -> None:
    request = Request(headers=[(b"host", b"w.test")], path="/p", query_string=b"a=1")
    ours = call_asgi(TrustedHost(InnerApp().asgi(), allowed_hosts=["www.w.test"]), request)
    theirs = call_asgi(
        TrustedHostMiddleware(InnerApp().asgi(), allowed_hosts=["www.w.test"]), request
    )
    assert (ours.status, ours.header(b"location")) == (theirs.status, theirs.header(b"location"))
    assert ours.header(b"location") == b"http://www.w.test/p?a=1"


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (["exa*mple.com"], "wildcard"),
        (["*example.com"], "wildcard"),
        (["**.example.com"], "wildcard"),
        (["example.com*"], "wildcard"),
        (["example.com\r\nX-Evil: 1"], "not a host pattern"),
        (["example.com/path"], "not a host pattern"),
        (["example.com:0"], "not a host pattern"),
        (["example.com:99999"], "not a host pattern"),
        (["[::g]"], "not a host pattern"),
        (["[1::2::3]"], "IPv6"),
        ([], "empty"),
        (["exa mple.com"], "not a host pattern"),
    ],
)
def test_misconfiguration_fails_at_construction(patterns: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrustedHost(InnerApp().wsgi(), allowed_hosts=patterns)


def test_other_configuration_errors() -> None:
    with pytest.raises(TypeError, match="each pattern must be a str"):
        TrustedHost(InnerApp().wsgi(), allowed_hosts=[b"example.com"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="www_redirect"):
        TrustedHost(InnerApp().wsgi(), www_redirect="yes")  # type: ignore[arg-type]


def test_non_ascii_and_bare_ipv6_patterns_are_normalised() -> None:
    app = TrustedHost(InnerApp().wsgi(), allowed_hosts=["café.example", "::1", "solo.test"])
    for value in (b"xn--caf-dma.example", b"[::1]:8000", b"solo.test"):
        assert call_wsgi(app, Request(headers=[(b"host", value)])).status == 200


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_each_refusal_is_one_log_line_naming_the_host(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    inner = InnerApp()
    app = TrustedHost(inner.wsgi() if interface == "wsgi" else inner.asgi(), allowed_hosts=["a"])
    call = call_wsgi if interface == "wsgi" else call_asgi
    result = call(app, Request(headers=[(b"host", b"evil.example\x7f" + b"x" * 500)]))
    assert result.status == 400
    records = [r for r in caplog.records if r.name.startswith("bridge")]
    assert len(records) == 1
    assert records[0].name == "bridge.middleware.trusted_host"
    assert "'evil.example\\x7f" in records[0].getMessage()
    assert len(records[0].getMessage()) < 200


def test_flask_wsgi_app() -> None:
    flask_app = Flask("trusted")

    @flask_app.get("/")
    def index() -> str:
        return "flask ok"

    flask_app.wsgi_app = TrustedHost(  # type: ignore[method-assign]
        flask_app.wsgi_app, allowed_hosts=["example.com"]
    )
    client = flask_app.test_client()
    assert client.get("/", headers={"Host": "example.com"}).data == b"flask ok"
    refused = client.get("/", headers={"Host": "evil.com"})
    assert (refused.status_code, refused.data) == (400, b"Invalid host header")


def test_fastapi_add_middleware(anyio_backend: tuple[str, dict[str, object]]) -> None:
    api = FastAPI()

    @api.get("/")
    async def index() -> dict[str, Any]:
        return {"ok": True}

    api.add_middleware(TrustedHost, allowed_hosts=["example.com", "testserver"])
    backend = anyio_backend[0]
    assert asgi_request(api, "GET", "/", backend=backend).json() == {"ok": True}
    refused = asgi_request(api, "GET", "/", {"Host": "evil.com"}, backend=backend)
    assert (refused.status_code, refused.text) == (400, "Invalid host header")


@pytest.mark.parametrize("call", [call_wsgi, call_asgi], ids=["wsgi", "asgi"])
def test_exempt_health_check_is_served_whatever_its_host(
    call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A load balancer asks by IP address (or with no Host): exempt paths are served,
    every other path is still refused with its one log line."""

    def build(inner: InnerApp) -> Any:
        app = inner.wsgi() if call is call_wsgi else inner.asgi()
        return TrustedHost(app, allowed_hosts=["example.com"], exempt=["=/healthz"])

    by_ip = [(b"host", b"10.0.0.7:8000")]
    with caplog.at_level(logging.WARNING, logger="bridge.middleware.trusted_host"):
        assert call(build(InnerApp()), Request(path="/healthz", headers=by_ip)).status == 200
        assert call(build(InnerApp()), Request(path="/healthz", headers=[])).status == 200
        assert caplog.records == []
        assert call(build(InnerApp()), Request(path="/healthz/x", headers=by_ip)).status == 400
        assert call(build(InnerApp()), Request(path="/", headers=[])).status == 400
    assert len(caplog.records) == 2


def test_exempt_is_checked_at_construction() -> None:
    with pytest.raises(TypeError, match="TrustedHost: exempt"):
        TrustedHost(InnerApp().asgi(), exempt=[42])  # type: ignore[list-item]
