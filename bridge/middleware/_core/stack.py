"""Composing several middleware in one place, in request order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from bridge.middleware._core.base import Middleware

__all__ = ("Layer", "stack")

Layer: TypeAlias = Callable[[Any], Any] | tuple[Callable[..., Any], Mapping[str, Any]]


def stack(app: Any, *layers: Layer) -> Any:
    """Wrap ``app`` in ``layers``; the first layer sees the request first.

    Each layer is a middleware class (``ProxyHeaders``), a ``(class, options)``
    pair, or any ``app -> app`` callable such as ``functools.partial``::

        app = stack(app, (ProxyHeaders, {"trusted": ["10.0.0.0/8"]}), SecurityHeaders)

    is ``ProxyHeaders(SecurityHeaders(app), trusted=[...])``: ProxyHeaders
    rewrites the request before SecurityHeaders decides, and SecurityHeaders
    edits the response before ProxyHeaders sees it. Works for WSGI and ASGI
    apps alike, because every layer keeps ``app``'s interface.

    ProxyHeaders must come before every other bridge middleware (they read the
    client, scheme and host it restores: behind a TLS proxy, SecurityHeaders
    placed before it never sends HSTS); another order raises ``ValueError``.

    .. versionchanged:: 0.2
       A ProxyHeaders after another bridge middleware is refused.
    """
    _check_order(layers)
    for layer in reversed(layers):
        if isinstance(layer, tuple):
            factory, options = layer
            app = factory(app, **options)
        else:
            app = layer(app)
    return app


def _factory(layer: Layer) -> Any:
    return layer[0] if isinstance(layer, tuple) else layer


def _check_order(layers: tuple[Layer, ...]) -> None:
    """Refuse a ProxyHeaders that sees the request after another bridge middleware."""
    from bridge.middleware.proxy_headers import ProxyHeaders  # imports this package

    factories = [_factory(layer) for layer in layers]
    seen: list[str] = []
    for factory in factories:
        if factory is ProxyHeaders and seen:
            raise ValueError(
                f"stack(): ProxyHeaders must come first, before {', '.join(seen)}: they read "
                "the client, scheme and host it restores (behind a TLS proxy, SecurityHeaders "
                "before it never sends HSTS). Move ProxyHeaders to the front."
            )
        if isinstance(factory, type) and issubclass(factory, Middleware):
            seen.append(factory.__name__)
