"""HTTPSRedirect: Starlette side by side, configuration errors, logging, Flask."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware

from bridge import HTTPSRedirect
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi


@pytest.mark.parametrize(
    "request_",
    [
        Request(headers=[(b"host", b"a.test")], path="/p/q", query_string=b"x=1&y=2"),
        Request(headers=[(b"host", b"a.test:80")], path="/"),
        Request(headers=[(b"host", b"a.test:8080")], root_path="/m", path="/m/p"),
        Request(headers=[(b"host", b"a.test")], scheme="https"),
    ],
    ids=["path-query", "port-80", "port-8080-root-path", "https"],
)
def test_same_redirect_as_starlette_on_plain_paths(request_: Request) -> None:
    ours = call_asgi(HTTPSRedirect(InnerApp().asgi(), status=307), request_)
    theirs = call_asgi(HTTPSRedirectMiddleware(InnerApp().asgi()), request_)
    assert (ours.status, ours.header(b"location")) == (theirs.status, theirs.header(b"location"))


def test_escapes_kept_where_starlette_decodes_them() -> None:
    request = Request(headers=[(b"host", b"a.test")], path="/a/b", raw_path=b"/a%2Fb")
    ours = call_asgi(HTTPSRedirect(InnerApp().asgi()), request)
    assert ours.header(b"location") == b"https://a.test/a%2Fb"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"status": 200}, ValueError, "status must be one of"),
        ({"status": True}, ValueError, "status must be one of"),
        ({"exempt": ["healthz"]}, ValueError, "must start with '/'"),
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        HTTPSRedirect(InnerApp().wsgi(), **options)


def test_bad_host_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    result = call_wsgi(
        HTTPSRedirect(InnerApp().wsgi()), Request(headers=[(b"host", b"a\r.test" * 100)])
    )
    assert result.status == 400
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.name == "bridge.middleware.https_redirect"
    assert "a\\r.test" in record.getMessage()


def test_flask_wsgi_app() -> None:
    flask_app = Flask("https")

    @flask_app.get("/")
    def index() -> str:
        return "secure"

    flask_app.wsgi_app = HTTPSRedirect(flask_app.wsgi_app)  # type: ignore[method-assign]
    client = flask_app.test_client()
    moved = client.get("/?a=%41", base_url="http://example.com")
    assert (moved.status_code, moved.headers["Location"]) == (308, "https://example.com/?a=%41")
    assert client.get("/", base_url="https://example.com").data == b"secure"


@pytest.mark.parametrize("call", [call_wsgi, call_asgi], ids=["wsgi", "asgi"])
@pytest.mark.parametrize(
    ("forwarded", "warned"),
    [
        ((b"x-forwarded-proto", b"https"), True),
        ((b"x-forwarded-proto", b"HTTPS, http"), True),
        ((b"forwarded", b'for=203.0.113.9;proto="https"'), True),
        ((b"x-forwarded-proto", b"http"), False),
        (None, False),
    ],
)
def test_redirect_a_proxy_says_was_https_warns_of_the_loop(
    call: Any, forwarded: tuple[bytes, bytes] | None, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a TLS-terminating proxy without ProxyHeaders every request looks like plain
    HTTP: the redirect goes out (the scheme is all HTTPSRedirect trusts) with one warning
    that names the fix, since the client will come back over the same proxy."""
    inner = InnerApp()
    app = HTTPSRedirect(inner.wsgi() if call is call_wsgi else inner.asgi())
    headers = [(b"host", b"example.com"), *([forwarded] if forwarded else [])]
    with caplog.at_level(logging.WARNING, logger="bridge.middleware.https_redirect"):
        result = call(app, Request(headers=headers))
        again = call(app, Request(headers=headers))  # a configuration problem: said once
    assert result.status == again.status == 308
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == (1 if warned else 0)
    if warned:
        assert "put ProxyHeaders outside HTTPSRedirect" in messages[0]
