"""Key functions over the identity the app already established (route-level limits).

An authentication middleware or the framework has verified who is calling
and recorded it: an environ / scope key (``REMOTE_USER``, a value an earlier
middleware set), Django's ``request.user``, Starlette's ``request.user`` or
``request.state``. These key functions read that record from the
:class:`~bridge.ratelimit.RouteRequest` a route-level limit passes them, so
they are only as trustworthy as what set it: a value the client sent
unverified (a JWT nobody checked, a user id header) is a key the client
chooses.

A request with no identity is keyed by ``fallback`` (default: the client
address), so anonymous clients still get a bucket each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from bridge.ratelimit._keys import client_address

if TYPE_CHECKING:
    from bridge.ratelimit._route import RouteRequest

__all__ = ("environ_key", "state_key", "user_key")

RouteKeyFunc: TypeAlias = "Callable[[RouteRequest], str | None]"
Fallback: TypeAlias = "Callable[[Any], str | None] | None"


def _with_fallback(tag: str, find: Callable[[RouteRequest], object], fallback: Fallback) -> Any:
    def key(request: RouteRequest) -> str | None:
        found = find(request)
        if found is not None and found != "":
            return f"{tag}:{found}"
        return None if fallback is None else fallback(request)

    key.keys_by_address = getattr(fallback, "keys_by_address", False)  # type: ignore[attr-defined]
    return key


def environ_key(name: str, *, fallback: Fallback = client_address) -> RouteKeyFunc:
    """Key on the value of environ key ``name`` (WSGI) or scope key ``name`` (ASGI).

    E.g. ``environ_key("REMOTE_USER")`` (set by a server or a WSGI auth
    middleware) or the key an earlier middleware of your own sets.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"environ_key needs an environ / scope key name, not {name!r}")
    found: RouteKeyFunc = _with_fallback(name, lambda r: r.env.get(name), fallback)
    return found


def _user_id(request: RouteRequest) -> object:
    # Django's request.user, or Starlette's (only with AuthenticationMiddleware: it
    # raises without "user" in the scope, so read the scope there).
    if hasattr(request.request, "META"):
        user = getattr(request.request, "user", None)
    else:
        user = request.env.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    for attribute in ("pk", "id", "identity", "username"):
        try:
            value = getattr(user, attribute, None)
        except NotImplementedError:  # Starlette's BaseUser.identity
            continue
        if value is not None and value != "":
            return value
    return None


def user_key(*, fallback: Fallback = client_address) -> RouteKeyFunc:
    """Key on the authenticated user: ``user:<pk>`` (Django's ``request.user``, after
    ``AuthenticationMiddleware``) or ``user:<identity>`` (Starlette's, after its
    ``AuthenticationMiddleware``); anonymous requests are keyed by ``fallback``."""
    found: RouteKeyFunc = _with_fallback("user", _user_id, fallback)
    return found


def state_key(name: str, *, fallback: Fallback = client_address) -> RouteKeyFunc:
    """Key on attribute ``name`` of Starlette's ``request.state`` (the scope's
    ``"state"``, which an earlier middleware or dependency fills) or Flask's ``g``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"state_key needs an attribute name, not {name!r}")

    def find(request: RouteRequest) -> object:
        state = request.env.get("state")
        if isinstance(state, dict):
            return state.get(name)
        if hasattr(request.request, "environ"):  # Flask: g is the app context's state
            import flask

            return flask.g.get(name)
        return None

    found: RouteKeyFunc = _with_fallback(name, find, fallback)
    return found
