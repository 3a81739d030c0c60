"""``bridge.middleware.stack`` puts bridge's middleware in the recommended order whatever
order they are listed in; other layers keep their places (docs/middleware/configuring.md)."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest

import bridge
from bridge import (
    CORS,
    Compression,
    ConcurrencyLimit,
    CustomHeaders,
    HTTPSRedirect,
    ProxyHeaders,
    RateLimit,
    RequestBuffering,
    RequestId,
    ResponseBuffering,
    SecurityHeaders,
    TrustedHost,
)
from bridge.middleware import RECOMMENDED_ORDER, Layer, Middleware, RequestHead, stack
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

EVERY: list[Layer] = [
    (ProxyHeaders, {"trusted": ["127.0.0.1"]}),
    (TrustedHost, {"allowed_hosts": ["example.com"]}),
    HTTPSRedirect,
    SecurityHeaders,
    (CORS, {"allow_origins": ["https://app.example.com"]}),
    RequestId,
    (RateLimit, {"limit": "1/minute"}),
    (ConcurrencyLimit, {"limit": 4}),
    RequestBuffering,
    ResponseBuffering,
    Compression,
    (CustomHeaders, {"set_response": {"x-served-by": "bridge"}}),
]
NAMES = [name for name, _ in RECOMMENDED_ORDER]


def chain(app: Any) -> list[str]:
    """The class names from the outermost layer in."""
    names = []
    while isinstance(app, Middleware):
        names.append(type(app).__name__)
        app = app.app
    return names


def test_the_order_names_every_middleware_bridge_exports() -> None:
    exported = {
        name for name in bridge.__all__
        if isinstance(getattr(bridge, name), type) and issubclass(getattr(bridge, name), Middleware)
    }  # fmt: skip
    assert set(NAMES) == exported
    assert all(reason for _, reason in RECOMMENDED_ORDER)


@pytest.mark.parametrize("seed", range(6))
def test_any_listed_order_gives_the_recommended_one(seed: int) -> None:
    layers = list(EVERY)
    random.Random(seed).shuffle(layers)
    assert chain(stack(InnerApp().wsgi(), *layers)) == NAMES
    assert chain(stack(InnerApp().asgi(), *reversed(layers))) == NAMES


class Tagging(Middleware):
    """One of the user's own middleware."""

    def decide_request(self, head: RequestHead, now: float) -> None:
        return None


def test_other_layers_keep_their_places() -> None:
    seen: list[str] = []

    def plain(app: Any) -> Any:  # an app -> app callable that is not a bridge middleware
        seen.append("plain")
        return app

    layers: list[Layer] = [(ProxyHeaders, {"trusted": ["127.0.0.1"]}), Compression, Tagging, plain,
              SecurityHeaders, functools.partial(RequestId, header="x-trace-id")]  # fmt: skip
    app = stack(InnerApp().wsgi(), *layers)
    assert chain(app) == ["ProxyHeaders", "SecurityHeaders", "Tagging", "RequestId", "Compression"]
    assert seen == ["plain"]


def test_own_middleware_before_proxy_headers_is_refused() -> None:
    with pytest.raises(ValueError, match="ProxyHeaders must come first, before Tagging"):
        stack(InnerApp().wsgi(), Tagging, (ProxyHeaders, {"trusted": ["127.0.0.1"]}))


BEHIND_TLS = Request(headers=[(b"host", b"example.com"), (b"x-forwarded-proto", b"https")])


@pytest.mark.parametrize("interface", ["wsgi", "asyncio", "trio"])
def test_security_headers_listed_first_still_sends_hsts_behind_a_tls_proxy(
    interface: str,
) -> None:
    layers: list[Layer] = [SecurityHeaders, (ProxyHeaders, {"trusted": ["127.0.0.1"]})]
    if interface == "wsgi":
        result = call_wsgi(stack(InnerApp().wsgi(), *layers), BEHIND_TLS)
    else:
        result = call_asgi(stack(InnerApp().asgi(), *layers), BEHIND_TLS, backend=interface)
    assert result.status == 200
    assert result.header(b"strict-transport-security") is not None


def test_cors_listed_after_rate_limit_still_labels_the_429() -> None:
    origin = (b"origin", b"https://app.example.com")
    app = stack(
        InnerApp().wsgi(),
        (RateLimit, {"limit": "1/minute"}),
        (CORS, {"allow_origins": ["https://app.example.com"]}),
    )
    request = Request(headers=[(b"host", b"example.com"), origin])
    assert call_wsgi(app, request).status == 200
    rejected = call_wsgi(app, request)
    assert rejected.status == 429
    assert rejected.header(b"access-control-allow-origin") == b"https://app.example.com"
