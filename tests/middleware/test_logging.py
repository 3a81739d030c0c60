"""Every log line bridge writes names the middleware, its decision and the request, in the
message and as ``extra=`` fields, at a level the default setups show for refusals and faults.

One table: each case triggers one middleware's line under WSGI and ASGI (asyncio and trio)
and checks the record's logger, level, message and fields (see docs/logging.md).
"""

from __future__ import annotations

import ast
import logging
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge import (
    CORS,
    Compression,
    HTTPSRedirect,
    ProxyHeaders,
    RequestBuffering,
    RequestId,
    ResponseBuffering,
    SecurityHeaders,
    TrustedHost,
)
from bridge._http.logfields import log_fields, request_parts
from bridge.ratelimit import ConcurrencyLimit, MemoryStore, RateLimit
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

INTERFACES = ["wsgi", "asyncio", "trio"]
FIELDS = ("bridge_middleware", "bridge_decision", "bridge_method", "bridge_path", "bridge_client")


class FullStore(MemoryStore):
    """Every concurrency slot is taken: ConcurrencyLimit rejects each request."""

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        return False


def rate_limited(app: Any) -> Any:
    return RateLimit(app, "1/minute", clock=lambda: 100.0)


@dataclass(frozen=True)
class LogCase:
    build: Callable[[Any], Any]
    logger: str
    level: int
    middleware: str
    decision: str
    detail: str  # the message after "<middleware> <decision> <method> <path> (client ...): "
    request: Request = field(default_factory=Request)
    inner: InnerApp = field(default_factory=InnerApp)
    calls: int = 1  # requests sent; the line is written by the last
    more: dict[str, Any] = field(default_factory=dict)  # a middleware's own extra fields


CASES = [
    pytest.param(
        LogCase(
            lambda app: TrustedHost(app, allowed_hosts=["site.test"]),
            "bridge.middleware.trusted_host", logging.WARNING, "TrustedHost", "refused",
            "Host 'evil.test' not in allowed_hosts; sent 400",
            Request(headers=[(b"host", b"evil.test")]),
        ),
        id="trusted-host",
    ),
    pytest.param(
        LogCase(
            HTTPSRedirect, "bridge.middleware.https_redirect", logging.WARNING,
            "HTTPSRedirect", "refused", "cannot redirect to Host 'a b'; sent 400",
            Request(headers=[(b"host", b"a b")]),
        ),
        id="https-redirect",
    ),
    pytest.param(
        LogCase(
            lambda app: CORS(app, allow_origins=["https://site.test"]),
            "bridge.middleware.cors", logging.WARNING, "CORS", "refused",
            "preflight from Origin 'https://evil.test': origin",
            Request(method="OPTIONS", path="/api", headers=[
                (b"host", b"t"), (b"origin", b"https://evil.test"),
                (b"access-control-request-method", b"GET"),
            ]),
        ),
        id="cors-preflight",
    ),
    pytest.param(
        LogCase(
            lambda app: RequestId(app, trust_incoming=True),
            "bridge.middleware.request_id", logging.WARNING, "RequestId", "replaced",
            "invalid incoming x-request-id 'a\\x01'",
            Request(headers=[(b"host", b"t"), (b"x-request-id", b"a\x01")]),
        ),
        id="request-id",
    ),
    pytest.param(
        LogCase(
            Compression, "bridge.middleware.compression", logging.WARNING, "Compression",
            "ignored", "malformed Accept-Encoding member 'gzip;q=2'",
            Request(headers=[(b"host", b"t"), (b"accept-encoding", b"gzip;q=2")]),
        ),
        id="compression",
    ),
    pytest.param(
        LogCase(
            lambda app: ProxyHeaders(app, trusted=["127.0.0.1"]),
            "bridge.middleware.proxy_headers", logging.WARNING, "ProxyHeaders", "ignored",
            "invalid forwarded values: X-Forwarded-For",
            Request(headers=[(b"host", b"t"), (b"x-forwarded-for", b"not-an-ip")]),
        ),
        id="proxy-headers-invalid",
    ),
    pytest.param(
        LogCase(
            lambda app: ProxyHeaders(app, trusted=["10.0.0.1"]),
            "bridge.middleware.proxy_headers", logging.INFO, "ProxyHeaders", "removed",
            "forwarded headers from an untrusted peer: x-forwarded-for",
            Request(headers=[(b"host", b"t"), (b"x-forwarded-for", b"203.0.113.9")]),
        ),
        id="proxy-headers-untrusted",
    ),
    pytest.param(
        LogCase(
            rate_limited, "bridge.ratelimit", logging.WARNING, "RateLimit", "rejected",
            "rule 'default' (key 127.0.0.1, policy \"1/minute\";q=1;w=60, retry in 60 s)",
            calls=2, more={"ratelimit_result": "rejected", "ratelimit_key": "127.0.0.1"},
        ),
        id="ratelimit",
    ),
    pytest.param(
        LogCase(
            lambda app: ConcurrencyLimit(app, 1, store=FullStore()),
            "bridge.ratelimit", logging.WARNING, "ConcurrencyLimit", "rejected",
            "limit 'conn' (key 127.0.0.1, 1 in flight)",
            more={"ratelimit_result": "rejected"},
        ),
        id="concurrency-limit",
    ),
    pytest.param(
        LogCase(
            lambda app: RequestBuffering(app, max_body_size=10),
            "bridge.buffering", logging.WARNING, "RequestBuffering", "refused",
            "413 Content Too Large: declared Content-Length 20 is over the limit 10",
            Request(method="POST", path="/up", body=b"x" * 20),
        ),
        id="request-buffering",
    ),
    pytest.param(
        LogCase(
            lambda app: ResponseBuffering(app, max_size=4, spool_dir="/nonexistent/spool"),
            "bridge.buffering", logging.WARNING, "ResponseBuffering", "streamed",
            "not buffered:", inner=InnerApp(body=[b"x" * 8]),
        ),
        id="response-buffering",
    ),
    pytest.param(
        LogCase(
            SecurityHeaders, "bridge.middleware", logging.ERROR, "SecurityHeaders", "failed",
            "the app raised before its response started; sent 500",
            inner=InnerApp(fail="before_start"),
        ),
        id="core-app-failure",
    ),
]  # fmt: skip


def bridge_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("bridge")]


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("case", CASES)
def test_each_line_names_who_what_and_which_request(
    case: LogCase, interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    app = case.build(case.inner.wsgi() if interface == "wsgi" else case.inner.asgi())
    for _ in range(case.calls):
        caplog.clear()
        if interface == "wsgi":
            call_wsgi(app, case.request)
        else:
            call_asgi(app, case.request, backend=interface)
    [record] = bridge_records(caplog)
    assert (record.name, record.levelno) == (case.logger, case.level)
    method, path = case.request.method, case.request.path
    who = f"{case.middleware} {case.decision} {method} {path} (client 127.0.0.1)"
    assert record.getMessage().startswith(f"{who}: {case.detail}")
    fields = {name: getattr(record, name) for name in FIELDS}
    assert fields == {
        "bridge_middleware": case.middleware,
        "bridge_decision": case.decision,
        "bridge_method": method,
        "bridge_path": path,
        "bridge_client": "127.0.0.1",
    }
    for name, value in case.more.items():
        assert getattr(record, name) == value
    assert "logfields" not in record.pathname  # the record names the call site


@pytest.mark.parametrize(
    ("request_", "parts"),
    [
        pytest.param(None, (None, None, None), id="none"),
        pytest.param(
            {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9",
             "REMOTE_ADDR": "10.0.0.1"},
            ("GET", "/app/café", "10.0.0.1"), id="environ",
        ),
        pytest.param(
            {"type": "http", "method": "POST", "path": "/x", "client": ("10.0.0.2", 5)},
            ("POST", "/x", "10.0.0.2"), id="scope",
        ),
        pytest.param(
            {"type": "websocket", "path": "/ws", "client": None},
            ("WEBSOCKET", "/ws", None), id="websocket-scope",
        ),
        pytest.param(
            {"type": "http", "method": "GET", "path": "/a\r\nFAKE: 1", "client": None},
            ("GET", "/a\\r\\nFAKE: 1", None), id="control-characters-escaped",
        ),
        pytest.param(
            {"type": "http", "method": "GET", "path": "/" + "a" * 500, "client": None},
            ("GET", "/" + "a" * 199 + "...", None), id="long-path-cut",
        ),
    ],
)  # fmt: skip
def test_request_parts(request_: object, parts: tuple[str | None, ...]) -> None:
    assert request_parts(request_) == parts


def test_fields_add_a_middlewares_own() -> None:
    fields = log_fields("RateLimit", "rejected", None, ratelimit_rule="login")
    assert fields == {
        "bridge_middleware": "RateLimit",
        "bridge_decision": "rejected",
        "bridge_method": None,
        "bridge_path": None,
        "bridge_client": None,
        "ratelimit_rule": "login",
    }


LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
#: EventLog itself, and the app's own wsgi.errors lines (its text, not bridge's decision).
EXEMPT = {
    ("bridge/_http/logfields.py", "logger"),
    ("bridge/wsgi_to_asgi/_request.py", "errors_logger"),
}


def test_no_log_line_bypasses_eventlog() -> None:
    """A ``logger.<level>(...)`` call anywhere else would write a line without the fields."""
    root = pathlib.Path(__file__).resolve().parents[2]
    found = []
    for path in sorted((root / "bridge").rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            if node.func.attr not in LOG_METHODS or not isinstance(target, ast.Name):
                continue
            if "logger" in target.id and (relative, target.id) not in EXEMPT:
                found.append(f"{relative}:{node.lineno} {target.id}.{node.func.attr}")
    assert found == []
