"""Bad input to CORS, TrustedHost, HTTPSRedirect, RequestId and Compression, under WSGI and
ASGI (asyncio and trio): each gets a defined response and at most one log line, and
never a 500 of the middleware's own making.

An app that raises is answered the way bridge's core answers for every middleware:
* a middleware that sees the response (CORS, RequestId, Compression) holds its head,
  so an app that raises before its first body chunk gets bridge's plain 500 and one
  ERROR line with the traceback; the exception goes no further, so the server does not
  log it a second time;
* a middleware that only decides on the request (TrustedHost, HTTPSRedirect) stays out
  of the response: the exception reaches the server exactly as without it (the server
  answers and logs it once), and bridge logs nothing;
* after the first body chunk the response cannot change: the chunks sent stay sent
  (Compression's are a decodable gzip prefix) and the exception reaches the server.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from bridge import CORS, Compression, HTTPSRedirect, RequestId, TrustedHost
from bridge.testing import InnerApp, Request, Result, call_asgi, call_wsgi

SITE = b"https://site.test"
REQUEST = Request(
    headers=[(b"host", b"t.test"), (b"origin", SITE), (b"accept-encoding", b"gzip")],
    scheme="https",
)
MIDDLEWARE: dict[str, Callable[[Any], Any]] = {
    "cors": lambda app: CORS(app, allow_origins=[SITE.decode()]),
    "trusted-host": lambda app: TrustedHost(app, allowed_hosts=["t.test"]),
    "https-redirect": HTTPSRedirect,
    "request-id": RequestId,
    "compression": lambda app: Compression(app, minimum_size=0),
}
SEES_RESPONSE = {"cors", "request-id", "compression"}
INTERFACES = ["wsgi", "asyncio", "trio"]
FIRST = b"x" * 600


def call(interface: str, build: Callable[[Any], Any], inner: InnerApp, request: Request) -> Result:
    if interface == "wsgi":
        return call_wsgi(build(inner.wsgi()), request)
    return call_asgi(build(inner.asgi()), request, backend=interface)


def outcome(interface: str, build: Callable[[Any], Any], inner: InnerApp) -> Result | str:
    """The result, or the exception that reached the server as ``"raised: ..."``."""
    try:
        return call(interface, build, inner, REQUEST)
    except RuntimeError as exc:
        return f"raised: {exc}"


def bridge_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("bridge")]


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("fail", ["before_start", "after_start"])
@pytest.mark.parametrize("name", list(MIDDLEWARE))
def test_app_raising_before_its_body_starts(
    name: str, fail: str, interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    inner = InnerApp(body=[FIRST, b"y" * 600], fail=fail)
    got = outcome(interface, MIDDLEWARE[name], inner)
    if name in SEES_RESPONSE:
        assert isinstance(got, Result)
        assert (got.status, got.body, got.error) == (500, b"Internal Server Error\n", None)
        [record] = bridge_records(caplog)
        assert record.levelno == logging.ERROR
        detail = "the app raised before its response started; sent 500"
        assert record.getMessage().endswith(f"): {detail}")
        assert record.exc_info is not None
        assert str(record.exc_info[1]).startswith("inner app failed")
    else:
        assert got == outcome(interface, lambda app: app, inner)  # as if it were not there
        assert bridge_records(caplog) == []


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("name", list(MIDDLEWARE))
def test_app_raising_after_its_first_chunk(
    name: str, interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    inner = InnerApp(body=[FIRST, b"y" * 600], fail="after_body")
    got = call(interface, MIDDLEWARE[name], inner, REQUEST)
    assert got.status == 200
    assert got.error == "RuntimeError: inner app failed after its first chunk"
    if name == "compression":
        assert got.header(b"content-encoding") == b"gzip"
        assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(got.body) == FIRST
    else:
        assert got.body == FIRST
    assert bridge_records(caplog) == []  # the server logs it, once


LONG_LIST = b", ".join([b"https://a%d.test" % n for n in range(1000)])


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(
    ("name", "headers", "status", "logger", "logged"),
    [
        pytest.param(
            "cors", [(b"origin", LONG_LIST)], 200, "cors", "CORS ignored: malformed Origin",
            id="origins",
        ),
        pytest.param(
            "cors", [(b"origin", b"https://caf\xc3\xa9.test")], 200, "cors",
            "CORS ignored: malformed Origin", id="non-ascii-origin",
        ),
        pytest.param(
            "trusted-host", [(b"host", LONG_LIST)], 400, "trusted_host",
            "TrustedHost refused: Host", id="1000-hosts",
        ),
        pytest.param(
            "trusted-host", [(b"host", b"xn--caf-dma.test\xc3\xa9")], 400, "trusted_host",
            "TrustedHost refused: Host", id="non-ascii-host",
        ),
        pytest.param(
            "https-redirect", [(b"host", b"\xe4\xbe\x8b\xe3\x81\x88.test")], 400,
            "https_redirect", "HTTPSRedirect refused: cannot redirect to Host",
            id="non-ascii-host-no-redirect",
        ),
        pytest.param(
            "compression", [(b"accept-encoding", b"gzip;q=1.0001")], 200, "compression",
            "Compression ignored: malformed Accept-Encoding", id="q-above-1",
        ),
        pytest.param(
            "compression", [(b"accept-encoding", b"gzip;q=0.5;q=0.7")], 200, "compression",
            "Compression ignored: malformed Accept-Encoding", id="two-q",
        ),
        pytest.param(
            "request-id-trusted", [(b"x-request-id", LONG_LIST)], 200, "request_id",
            "RequestId replaced: invalid incoming", id="1000-ids",
        ),
    ],
)  # fmt: skip
def test_malformed_header_is_one_log_line(
    name: str,
    headers: list[tuple[bytes, bytes]],
    status: int,
    logger: str,
    logged: str,
    interface: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    build = MIDDLEWARE.get(name) or (lambda app: RequestId(app, trust_incoming=True))
    names = {n for n, _ in headers}
    base = [pair for pair in REQUEST.headers if pair[0] not in names]
    request = Request(headers=[*base, *headers], scheme="http")
    inner = InnerApp(body=[FIRST])
    result = call(interface, build, inner, request)
    assert result.status == status
    if status == 200:
        assert result.body == FIRST  # forwarded unchanged (not compressed, no CORS headers)
        assert not [n for n, _ in result.headers if n.startswith(b"access-control-")]
    [record] = bridge_records(caplog)
    assert record.name == f"bridge.middleware.{logger}"
    who_did, detail = logged.split(": ", 1)  # the line names the request between them
    assert record.getMessage().startswith(f"{who_did} GET / (client 127.0.0.1): {detail}")
    named = [getattr(record, f"bridge_{name}") for name in ("method", "path", "client")]
    assert named == ["GET", "/", "127.0.0.1"]
    assert len(record.getMessage()) < 400  # the value is cut short, and escaped
    assert "\n" not in record.getMessage()


@pytest.mark.parametrize("interface", INTERFACES)
def test_thousand_unknown_codings_send_identity_quietly(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    accept = b", ".join(b"x-coding-%d;q=0.%d" % (n, n % 10) for n in range(1000))
    request = Request(headers=[(b"host", b"t.test"), (b"accept-encoding", accept)])
    result = call(interface, MIDDLEWARE["compression"], InnerApp(body=[FIRST]), request)
    assert (result.status, result.body, result.header(b"content-encoding")) == (200, FIRST, None)
    assert result.header(b"vary") == b"Accept-Encoding"
    assert bridge_records(caplog) == []  # well formed: nothing to report


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda app: CORS(app, allow_origins=["https://a.test\x00"]), ValueError, "not an origin"),
        (lambda app: CORS(app, allow_headers=["X-A\r\nSet-Cookie: a=b"]), ValueError, "token"),
        (lambda app: CORS(app, allow_methods="GET\nPOST"), ValueError, "token"),
        (lambda app: TrustedHost(app, allowed_hosts=["a.test\x00"]), ValueError, "host pattern"),
        (lambda app: TrustedHost(app, allowed_hosts="a.test\nb.test"), ValueError, "host pattern"),
        (lambda app: RequestId(app, header="X-Id: 1\r\nX-Evil"), ValueError, "token"),
        (lambda app: RequestId(app, header="X-Réquest-ID"), ValueError, "token"),
        (lambda app: Compression(app, exclude_types=["text/x\r\nX: 1"]), ValueError, "media type"),
    ],
)
def test_header_injection_in_configuration_is_refused_at_construction(
    build: Callable[[Any], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build(InnerApp().wsgi())
