"""Composing several middleware in one place, in request order.

:func:`stack` puts bridge's own middleware in :data:`RECOMMENDED_ORDER` whatever order
they are listed in; other layers keep their places. The order is a table (name, reason),
so the docs and the error messages state the same reasons.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from bridge.middleware._core.base import Middleware

__all__ = ("RECOMMENDED_ORDER", "Layer", "stack")

Layer: TypeAlias = Callable[[Any], Any] | tuple[Callable[..., Any], Mapping[str, Any]]

#: bridge's middleware in the order :func:`stack` puts them (the first sees the request
#: first), each with the reason for its place.
RECOMMENDED_ORDER: Final[tuple[tuple[str, str], ...]] = (
    ("ProxyHeaders", "restores the client, scheme and host that every layer below reads"),
    ("TrustedHost", "refuses a forged Host before any work is done for the request"),
    ("HTTPSRedirect", "redirects plain http first, and only to a Host TrustedHost accepted"),
    ("SecurityHeaders", "adds its headers to every response below it, refusals included"),
    ("CORS", "answers preflights, and gives 429 and 413 the CORS headers a browser needs"),
    ("RequestId", "tags every response and log line below it, rejections included"),
    ("RateLimit", "rejects before a concurrency slot is taken or a body is read"),
    ("ConcurrencyLimit", "bounds the requests in flight, bodies being buffered included"),
    ("RequestBuffering", "reads the body before the app runs, after the cheap refusals"),
    ("ResponseBuffering", "holds the final (compressed) body and sends its Content-Length"),
    ("Compression", "compresses the app's body before it is held or sent"),
    ("CustomHeaders", "edits the app's own response, which Compression then sees"),
)
_RANK: Final = {name: rank for rank, (name, _) in enumerate(RECOMMENDED_ORDER)}


def stack(app: Any, *layers: Layer) -> Any:
    """Wrap ``app`` in ``layers``; the first layer sees the request first.

    Each layer is a middleware class (``ProxyHeaders``), a ``(class, options)``
    pair, or any ``app -> app`` callable such as ``functools.partial``::

        app = stack(app, (ProxyHeaders, {"trusted": ["10.0.0.0/8"]}), SecurityHeaders)

    is ``ProxyHeaders(SecurityHeaders(app), trusted=[...])``: ProxyHeaders
    rewrites the request before SecurityHeaders decides, and SecurityHeaders
    edits the response before ProxyHeaders sees it. Works for WSGI and ASGI
    apps alike, because every layer keeps ``app``'s interface.

    bridge's own middleware (and subclasses of them) are put in
    :data:`RECOMMENDED_ORDER` whatever order they are listed in: listing
    ``SecurityHeaders`` before ``ProxyHeaders`` still sends HSTS behind a TLS
    proxy. Other layers keep their places; one of your own middleware (a
    :class:`Middleware` subclass) listed before ProxyHeaders raises ``ValueError``,
    since it would see the proxy's address instead of the client's. For another
    order, nest the calls yourself.

    .. versionchanged:: 0.2
       bridge's middleware are put in the recommended order; a ProxyHeaders after
       another middleware is refused.
    """
    layers = _recommended(layers)
    _check_order(layers)
    for layer in reversed(layers):
        if isinstance(layer, tuple):
            factory, options = layer
            app = factory(app, **options)
        else:
            app = layer(app)
    return app


def _factory(layer: Layer) -> Any:
    factory = layer[0] if isinstance(layer, tuple) else layer
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def _rank(layer: Layer) -> int | None:
    """The place of a bridge middleware (or a subclass of one) in the order; else None."""
    for klass in getattr(_factory(layer), "__mro__", ()):
        if klass.__module__.startswith("bridge.") and klass.__name__ in _RANK:
            return _RANK[klass.__name__]
    return None


def _recommended(layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """``layers`` with bridge's middleware sorted into the slots they occupy (stable)."""
    slots = [i for i, layer in enumerate(layers) if _rank(layer) is not None]
    ordered = sorted((layers[i] for i in slots), key=lambda layer: _rank(layer) or 0)
    result = list(layers)
    for slot, layer in zip(slots, ordered, strict=True):
        result[slot] = layer
    return tuple(result)


def _check_order(layers: tuple[Layer, ...]) -> None:
    """Refuse a ProxyHeaders that sees the request after another middleware."""
    seen: list[str] = []
    for layer in layers:
        factory = _factory(layer)
        if _rank(layer) == _RANK["ProxyHeaders"] and seen:
            raise ValueError(
                f"stack(): ProxyHeaders must come first, before {', '.join(seen)}: they read "
                "the client, scheme and host it restores (behind a TLS proxy, SecurityHeaders "
                "before it never sends HSTS). Move ProxyHeaders to the front."
            )
        if isinstance(factory, type) and issubclass(factory, Middleware):
            seen.append(factory.__name__)
