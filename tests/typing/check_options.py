"""Option values are ``Literal`` types and key functions take the public ``RequestHead``:
a typo is a type error, a correctly annotated function is accepted."""

from __future__ import annotations

from bridge import ProxyHeaders, RateLimit, RequestBuffering, SecurityHeaders
from bridge.ratelimit import Rule
from bridge.types import KeyFunc, RequestHead, WsgiApp


def tenant(head: RequestHead) -> str | None:
    value = head.header(b"x-tenant")
    return None if value is None else value.decode("latin-1")


def upload_cost(head: RequestHead) -> int:
    return 5 if head.method == "POST" else 1


def accepted(app: WsgiApp) -> None:
    key: KeyFunc = tenant
    RateLimit(app, "10/minute", key=key, cost=upload_cost)
    RateLimit(app, rules=[Rule("5/second", path="/api", key=tenant, cost=upload_cost)])
    RateLimit(app, "10/minute", algorithm="fixed_window")
    SecurityHeaders(app, preset="none")
    ProxyHeaders(app, mode="forwarded", use=["for", "proto", "host"])
    ProxyHeaders(app, mode="x-real-ip", use="for")
    RequestBuffering(app, mode="buffer")


def typos(app: WsgiApp) -> None:
    SecurityHeaders(app, preset="strickt")  # type: ignore[arg-type]
    RateLimit(app, "10/minute", algorithm="token_bucket")  # type: ignore[arg-type]
    ProxyHeaders(app, mode="x-forwarded-for")  # type: ignore[arg-type]
    ProxyHeaders(app, use=["for", "protocol"])  # type: ignore[list-item]
    RequestBuffering(app, mode="buffered")  # type: ignore[arg-type]
