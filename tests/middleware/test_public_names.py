"""The public names of the middleware area exist, and are where the docs say."""

from __future__ import annotations

import bridge
import bridge.middleware
import bridge.testing


def test_all_is_honest() -> None:
    for module in (bridge, bridge.middleware, bridge.testing):
        for name in module.__all__:
            assert getattr(module, name, None) is not None, (module.__name__, name)


def test_top_level_names() -> None:
    assert bridge.ProxyHeaders is bridge.middleware.ProxyHeaders
    assert bridge.SecurityHeaders is bridge.middleware.SecurityHeaders
    assert bridge.Headers is bridge.middleware.HeadersMiddleware
    assert bridge.testing.call_wsgi is not None
    for name in ("ProxyHeaders", "SecurityHeaders", "Headers", "testing"):
        assert name in bridge.__all__


def test_public_classes_are_documented() -> None:
    for obj in (
        bridge.ProxyHeaders,
        bridge.SecurityHeaders,
        bridge.Headers,
        bridge.middleware.Middleware,
        bridge.middleware.Exchange,
        bridge.middleware.RequestHead,
        bridge.middleware.Response,
        bridge.middleware.stack,
        bridge.testing.call_wsgi,
        bridge.testing.call_asgi,
        bridge.testing.Request,
        bridge.testing.InnerApp,
    ):
        assert obj.__doc__, obj
