"""``request_values``: the per-request values bridge's middleware attach, read the same
way under WSGI and ASGI, in any framework.

A middleware attaches a value to ``RequestHead.values`` (SecurityHeaders' CSP
nonce, RequestId's id, ProxyHeaders' original request); the drivers write the
whole mapping under the environ or scope key ``"bridge.values"`` and each value
under its own key as well. Frameworks hide the environ or scope in different
places (``request.environ``, ``request.scope``, Django's ``request.META`` under
WSGI but ``request.scope`` under ASGI): :func:`request_values` finds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from bridge.middleware.proxy_headers import ORIGINAL_KEY, OriginalRequest
from bridge.middleware.request_id import REQUEST_ID_KEY
from bridge.middleware.security_headers import NONCE_KEY

__all__ = ("VALUES_KEY", "RequestValues", "request_values")

#: The environ / scope key holding every per-request value as one read-only mapping
#: (the key the middleware drivers write; a test keeps the two equal).
VALUES_KEY: Final = "bridge.values"


class RequestValues(Mapping[str, Any]):
    """The per-request values of one request: a read-only mapping of key to value
    (``values["bridge.csp_nonce"]``, and your own middleware's keys), with an attribute
    for each value bridge's middleware provide, ``None`` when that middleware did not run.

    Attributes suit templates, whose languages cannot index with a dotted key
    (``{{ values.csp_nonce }}`` in Jinja and Django templates alike).

    .. versionadded:: 0.2
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RequestValues({self._values!r})"

    @property
    def csp_nonce(self) -> str | None:
        """SecurityHeaders' nonce for this response's CSP ``{nonce}`` (``"bridge.csp_nonce"``)."""
        value: str | None = self._values.get(NONCE_KEY)
        return value

    @property
    def request_id(self) -> str | None:
        """RequestId's id of this request (``"bridge.request_id"``)."""
        value: str | None = self._values.get(REQUEST_ID_KEY)
        return value

    @property
    def original_request(self) -> OriginalRequest | None:
        """The request as the server saw it before ProxyHeaders rewrote it
        (``"bridge.proxy.original"``): ``client``, ``scheme``, ``host``, ``server``,
        ``root_path``. ``None`` when ProxyHeaders did not run or changed nothing."""
        value: OriginalRequest | None = self._values.get(ORIGINAL_KEY)
        return value


def request_values(request: Any) -> RequestValues:
    """The per-request values bridge's middleware attached to ``request``.

    ``request`` is a WSGI environ, an ASGI scope, or a framework's request
    object: Flask / werkzeug (``request.environ``), Starlette / FastAPI
    (``request.scope``), Django under WSGI (``request.environ``) or ASGI
    (``request.scope``); anything with a ``scope``, ``environ`` or ``META``
    mapping. A request no bridge middleware touched gives an empty mapping.
    Values attached by ASGI middleware in front of ``WsgiToAsgi`` are found too
    (through ``environ["asgi.scope"]``).

    Raises ``TypeError`` for anything else.

    .. versionadded:: 0.2
    """
    source = _environ_or_scope(request)
    found: dict[str, Any] = {}
    # WsgiToAsgi keeps the scope it was given as environ["asgi.scope"]: an ASGI
    # middleware's values reach a WSGI app there; the environ's own win over them.
    outer = source.get("asgi.scope")
    for mapping in (outer, source) if isinstance(outer, Mapping) else (source,):
        found.update((key, value) for key, value in mapping.items() if _is_value_key(key))
        values = mapping.get(VALUES_KEY)
        if isinstance(values, Mapping):
            found.update(values)
    return RequestValues(found)


def _is_value_key(key: object) -> bool:
    return isinstance(key, str) and key.startswith("bridge.") and key != VALUES_KEY


def _environ_or_scope(request: Any) -> Mapping[str, Any]:
    if isinstance(request, Mapping):
        return request
    # Django's ASGIRequest has a META built from the scope, without bridge's keys:
    # read its scope first, then an environ, then META (a WSGI environ in Django).
    for name in ("scope", "environ", "META"):
        source = getattr(request, name, None)
        if isinstance(source, Mapping):
            return source
    raise TypeError(
        "request_values() needs a WSGI environ, an ASGI scope, or a request object with a "
        f"scope, environ or META mapping (Flask, Starlette, Django), got {request!r}"
    )
