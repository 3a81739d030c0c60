"""Composing several middleware in one place, in request order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

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
    """
    for layer in reversed(layers):
        if isinstance(layer, tuple):
            factory, options = layer
            app = factory(app, **options)
        else:
            app = layer(app)
    return app
