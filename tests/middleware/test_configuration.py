"""Misconfiguration raises at construction; bad input gives one log line."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge import CustomHeaders, ProxyHeaders, SecurityHeaders
from bridge.middleware.proxy_headers._plan import (
    parse_forwarded,
    parse_host,
    parse_node,
    parse_prefix,
)
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

APP = InnerApp().wsgi()


@pytest.mark.parametrize(
    ("factory", "options", "message"),
    [
        pytest.param(
            SecurityHeaders, {"hsts": "max-age=1\r\nX-Evil: 1"}, "CR, LF or NUL", id="hsts-crlf"
        ),
        pytest.param(SecurityHeaders, {"csp": "default-src\x00"}, "CR, LF or NUL", id="csp-nul"),
        pytest.param(SecurityHeaders, {"frame_options": "DENY\n"}, "CR, LF or NUL", id="lf"),
        pytest.param(SecurityHeaders, {"hsts": "forever"}, "max-age", id="hsts-syntax"),
        pytest.param(SecurityHeaders, {"preset": "paranoid"}, "preset", id="preset"),
        pytest.param(SecurityHeaders, {"frame_options": "{nonce}"}, "nonce", id="nonce-where"),
        pytest.param(SecurityHeaders, {"override": ["x-bogus"]}, "override", id="override"),
        pytest.param(SecurityHeaders, {"exempt": ["health"]}, "must start with '/'", id="exempt"),
        pytest.param(SecurityHeaders, {"exempt": [b"/h"]}, "not bytes", id="exempt-bytes"),
        pytest.param(SecurityHeaders, {"exempt": 3}, "list of them", id="exempt-int"),
        pytest.param(SecurityHeaders, {"exempt": ["/a*b"]}, "not a wildcard", id="exempt-star"),
        pytest.param(SecurityHeaders, {"csp": ""}, "empty", id="empty"),
        pytest.param(SecurityHeaders, {"coop": 3}, "must be a str", id="type"),
        pytest.param(ProxyHeaders, {"trusted": ["proxy.local"]}, "CIDR", id="trusted-name"),
        pytest.param(ProxyHeaders, {"trusted": ["10.0.0.0/33"]}, "CIDR", id="trusted-cidr"),
        pytest.param(ProxyHeaders, {"mode": "real-ip"}, "mode", id="mode"),
        pytest.param(ProxyHeaders, {"use": ["for", "client"]}, "unknown", id="use"),
        pytest.param(ProxyHeaders, {"mode": "forwarded", "use": ["prefix"]}, "no port", id="mix"),
        pytest.param(CustomHeaders, {}, "at least one", id="nothing"),
        pytest.param(CustomHeaders, {"set_response": {"Bad Name": "x"}}, "token", id="name"),
        pytest.param(
            CustomHeaders, {"set_response": {"x-a": "1\r\n"}}, "CR, LF or NUL", id="value-crlf"
        ),
        pytest.param(
            CustomHeaders, {"append_request": [("x-a", "\x00")]}, "CR, LF or NUL", id="value-nul"
        ),
        pytest.param(
            CustomHeaders, {"set_response": {"x-a": "caf\u00e9\u2603"}}, "latin-1", id="latin"
        ),
        pytest.param(
            CustomHeaders, {"remove_response": ["content-length"]}, "framing", id="framing"
        ),
        pytest.param(
            CustomHeaders, {"set_request": {"Transfer-Encoding": "x"}}, "framing", id="te"
        ),
        pytest.param(CustomHeaders, {"set_response": [("x-a",)]}, "pairs", id="shape"),
        pytest.param(
            CustomHeaders, {"set_response": {"x": "1"}, "paths": ["static"]}, "'/'", id="paths"
        ),
    ],
)
def test_misconfiguration_raises_with_a_fix(
    factory: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        factory(APP, **options)


def test_valid_configurations_build() -> None:
    SecurityHeaders(APP, preset="strict", override=True, exempt="/healthz")
    ProxyHeaders(APP, trusted="*")
    ProxyHeaders(APP, trusted=["10.0.0.0/8", "fd00::/8", "[::1]"], use=["for", "host", "prefix"])
    CustomHeaders(APP, remove_response="server")


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        pytest.param([(b"x-forwarded-proto", b"gopher")], "X-Forwarded-Proto", id="proto"),
        pytest.param([(b"x-forwarded-for", b"1.2.3.4, evil")], "X-Forwarded-For", id="for"),
        pytest.param([(b"x-forwarded-host", b"a\tb")], "host", id="host"),
    ],
)
def test_invalid_forwarded_values_give_one_warning(
    headers: list[tuple[bytes, bytes]], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(headers=[(b"host", b"testserver"), *headers])
    inner = InnerApp()
    wsgi = call_wsgi(ProxyHeaders(inner.wsgi(), use=["for", "proto", "host"]), request)
    records = [r for r in caplog.records if r.name == "bridge.middleware.proxy_headers"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert problem in records[0].getMessage()
    assert wsgi.status == 200
    caplog.clear()
    asgi = call_asgi(ProxyHeaders(inner.asgi(), use=["for", "proto", "host"]), request)
    assert asgi == wsgi
    assert len([r for r in caplog.records if r.name.startswith("bridge")]) == 1


def test_each_request_with_an_invalid_value_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Plans are cached by header text; the warning is still one per request."""
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(headers=[(b"host", b"testserver"), (b"x-forwarded-proto", b"gopher")])
    app = ProxyHeaders(InnerApp().wsgi())
    for _ in range(3):
        assert call_wsgi(app, request).status == 200
    records = [r for r in caplog.records if r.name == "bridge.middleware.proxy_headers"]
    assert [r.levelno for r in records] == [logging.WARNING] * 3


def test_the_original_request_is_a_read_only_mapping_of_the_servers_view() -> None:
    """``bridge.proxy.original`` reads the server's environ, not the app's copy."""
    kept: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["HTTP_HOST"] = "changed.example"  # the app's own copy
        environ["SCRIPT_NAME"] = "/changed"
        kept.append(environ["bridge.proxy.original"])
        start_response("204 No Content", [])
        return []

    request = Request(
        headers=[(b"host", b"testserver"), (b"x-forwarded-for", b"203.0.113.5")],
        client=("127.0.0.1", 4711),
    )
    assert call_wsgi(ProxyHeaders(app), request).status == 204
    (original,) = kept
    expected = {
        "client": ("127.0.0.1", 4711),
        "scheme": "http",
        "host": "testserver",
        "server": ("testserver", 80),
        "root_path": "",
    }
    assert original == expected
    assert dict(original) == expected
    assert list(original) == list(expected)
    assert len(original) == 5
    assert "OriginalRequest(" in repr(original)
    with pytest.raises(KeyError):
        original["path"]
    with pytest.raises(TypeError):
        original["host"] = "x"


def test_untrusted_peer_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(
        headers=[(b"host", b"h"), (b"x-forwarded-for", b"1.2.3.4")], client=("8.8.8.8", 1)
    )
    result = call_wsgi(ProxyHeaders(InnerApp().wsgi()), request)
    assert result.seen is not None
    assert result.seen.head.client == ("8.8.8.8", 1)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.5", ("203.0.113.5", 0)),
        (" 203.0.113.5:80 ", ("203.0.113.5", 80)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ('"[2001:DB8::1]:443"', ("2001:db8::1", 443)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("unknown", None),
        ("_hidden", None),
        ("[2001:db8::1]x", None),
        ("1.2.3.4:", None),
        ("1.2.3.4:65536", None),
        ("999.1.1.1", None),
        ("", None),
    ],
)
def test_parse_node(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_node(text) == expected


def test_parse_host_prefix_forwarded() -> None:
    assert parse_host("Example.com:8080") == ("example.com", 8080)
    assert parse_host("my_service") == ("my_service", None)
    assert parse_host("[::1]:1") == ("[::1]", 1)
    for bad in ("a b", "a/b", "[zz::1]", "a:0", "a:99999", "-a.com", "a@b"):
        assert parse_host(bad) is None, bad
    assert parse_prefix("/api/") == ("/api", "/api")
    assert parse_prefix("/caf%C3%A9") == ("/caf\u00e9", "/caf%C3%A9")
    for bad in ("api", "/", "//evil.com", "/a/../b", "/a b", "/%ff"):
        assert parse_prefix(bad) is None, bad
    assert parse_forwarded('for=1.2.3.4;proto=https, for="[::1]:80";by=x') == [
        {"for": "1.2.3.4", "proto": "https"},
        {"for": "[::1]:80", "by": "x"},
    ]
    for bad in ("for", "for=1;for=2", "for=a b", 'for="unterminated'):
        assert parse_forwarded(bad) is None, bad


def test_proxy_headers_memory_is_bounded_under_unique_chains() -> None:
    """Unique, long X-Forwarded-For chains from a trusted proxy do not grow memory."""
    import gc
    import io
    import sys
    import tracemalloc

    from bridge._http.translate import environ_from_scope

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    app = ProxyHeaders(hello, trusted=["127.0.0.1", "10.0.0.0/8"])
    base = environ_from_scope(Request().scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)

    def send(i: int) -> None:
        environ = dict(base)
        short = f"198.51.{i % 250}.{i % 200}, 10.0.{i % 250}.1"
        long = ", ".join([short] + [f"10.{j}.{i % 250}.9" for j in range(30)])
        environ["HTTP_X_FORWARDED_FOR"] = long if i % 2 else short
        list(app(environ, lambda status, headers, exc_info=None: None))

    for i in range(2000):
        send(i)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(2000, 10000):
        send(i)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 2_000_000, grown
