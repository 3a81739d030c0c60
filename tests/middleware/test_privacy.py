"""No process-wide object keeps a request's secrets (Set-Cookie, Authorization, Cookie).

After one request through each middleware under WSGI and ASGI, every module-level
object of ``bridge`` (and what dicts, memos, lists and classes hold, a few levels
deep) is searched for the secret values the request and its response carried.
"""

from __future__ import annotations

import secrets
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from bridge import (
    ConcurrencyLimit,
    CustomHeaders,
    ProxyHeaders,
    RateLimit,
    RequestBuffering,
    ResponseBuffering,
    SecurityHeaders,
)
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

_MIDDLEWARE: list[tuple[str, Callable[[Any], Any]]] = [
    ("proxy-headers", lambda app: ProxyHeaders(app, trusted="*", use=("for", "proto", "host"))),
    ("security-headers", lambda app: SecurityHeaders(app, csp="default-src 'self'")),
    ("headers", lambda app: CustomHeaders(app, set_response={"x-frame-options": "DENY"})),
    ("request-buffering", lambda app: RequestBuffering(app, mode="buffer")),
    ("response-buffering", lambda app: ResponseBuffering(app)),
    ("rate-limit", lambda app: RateLimit(app, "100/second")),
    ("concurrency-limit", lambda app: ConcurrencyLimit(app, 10)),
]


def _holds(obj: Any, secret: str, depth: int, seen: set[int]) -> bool:
    """True when ``obj`` (or what it holds, ``depth`` levels down) contains ``secret``."""
    if isinstance(obj, str):
        return secret in obj
    if isinstance(obj, (bytes, bytearray)):
        return secret.encode("latin-1") in obj
    if depth == 0 or id(obj) in seen or isinstance(obj, types.ModuleType):
        return False
    seen.add(id(obj))
    if isinstance(obj, dict):  # a Memo is a dict
        items: list[Any] = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
    elif isinstance(obj, type) and obj.__module__.startswith("bridge"):
        items = list(vars(obj).values())  # class-level caches
    else:
        items = [getattr(obj, name, None) for name in getattr(type(obj), "__slots__", ())]
        items += list(getattr(obj, "__dict__", {}).values())
    return any(_holds(item, secret, depth - 1, seen) for item in items)


def _holders(secret: str) -> list[str]:
    """``module.name`` of each bridge global that holds ``secret``."""
    found = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "bridge" or module_name.startswith("bridge.")):
            continue
        for name, value in list(vars(module).items()):
            if _holds(value, secret, depth=4, seen=set()):
                found.append(f"{module_name}.{name}")
    return found


def _request(token: str) -> tuple[Request, InnerApp]:
    request = Request(
        headers=[
            (b"host", b"testserver"),
            (b"authorization", f"Bearer auth-{token}".encode()),
            (b"cookie", f"session=req-{token}".encode()),
            (b"x-forwarded-for", b"203.0.113.9"),
        ]
    )
    inner = InnerApp(
        headers=[
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"set-cookie", f"session=resp-{token}; HttpOnly".encode()),
            (b"set-cookie", f"csrf=other-{token}".encode()),
        ]
    )
    return request, inner


def test_the_search_finds_a_secret_held_in_a_module_level_cache() -> None:
    """The search itself works: a secret parked in a bridge module's dict is found."""
    import bridge._http.memo as memo_module

    token = secrets.token_hex(8)
    parked = {("set-cookie", f"session={token}"): 1}
    memo_module._parked_for_test = [parked]  # type: ignore[attr-defined]
    try:
        assert _holders(token) == ["bridge._http.memo._parked_for_test"]
    finally:
        del memo_module._parked_for_test  # type: ignore[attr-defined]
    assert _holders(token) == []


@pytest.mark.parametrize(("name", "build"), [pytest.param(n, b, id=n) for n, b in _MIDDLEWARE])
def test_no_module_level_object_keeps_a_requests_secrets(
    name: str, build: Callable[[Any], Any], anyio_backend: tuple[str, dict[str, object]]
) -> None:
    token = secrets.token_hex(8)
    request, inner = _request(token)
    wsgi = call_wsgi(build(inner.wsgi()), request)
    asgi = call_asgi(build(inner.asgi()), request, backend=anyio_backend[0])
    for result in (wsgi, asgi):
        assert result.status == 200, (name, result)
        cookies = result.header_values(b"set-cookie")
        assert f"session=resp-{token}; HttpOnly".encode() in cookies, (name, cookies)
    assert _holders(token) == [], name
