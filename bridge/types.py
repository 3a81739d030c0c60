"""The types a user annotates with, from one public module.

Key and cost functions take the :class:`RequestHead` a middleware sees; option
values are ``Literal`` types, so a typo (``preset="strickt"``) is a type error in
the editor rather than a ``ValueError`` at start-up; WSGI apps are typed with
typeshed's ``wsgiref.types`` protocols, so ``app.wsgi_app = RateLimit(app.wsgi_app)``
type-checks in a Flask project (bar the ``method-assign`` error mypy gives every
assignment to a method, werkzeug's ``ProxyFix`` included).

.. versionadded:: 0.2
"""

from __future__ import annotations

from bridge._http.types import Environ, StartResponse, WsgiApp
from bridge.buffering._rules import Mode as BufferingMode
from bridge.middleware import Decision, Interface, RequestHead, Response
from bridge.middleware.proxy_headers._middleware import ProxyMode, ProxyUse
from bridge.middleware.security_headers import SecurityPreset
from bridge.ratelimit import Verdict
from bridge.ratelimit._keys import KeyFunc
from bridge.ratelimit._middleware import AlgorithmName
from bridge.values import RequestValues

__all__ = (
    "AlgorithmName",
    "BufferingMode",
    "Decision",
    "Environ",
    "Interface",
    "KeyFunc",
    "ProxyMode",
    "ProxyUse",
    "RequestHead",
    "RequestValues",
    "Response",
    "SecurityPreset",
    "StartResponse",
    "Verdict",
    "WsgiApp",
)
