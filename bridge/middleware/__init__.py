"""Middleware written once, identical under WSGI and ASGI.

The core (see docs/middleware/writing.md): a :class:`Middleware` subclass is
configured once and creates an :class:`Exchange` per request; the exchange sees
an immutable :class:`RequestHead`, decides (:class:`Forward` or
:class:`Respond`, yielding :class:`Effect` objects when it needs I/O), sees
the :class:`ResponseHead` before it is sent and is told how the request ended
(:class:`Outcome`). The WSGI and ASGI drivers do all the I/O.

``__all__`` is the API of someone who writes or uses middleware; the core's
internals stay importable from their modules under ``bridge.middleware._core``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from bridge._http.status import reason_phrase
from bridge._http.translate import BadRequest
from bridge.middleware._core.base import Interface, Middleware, detect_interface
from bridge.middleware._core.exchange import (
    Abort,
    Answer,
    BodyTimeout,
    Call,
    ClientDisconnected,
    Decision,
    Effect,
    Exchange,
    Forward,
    Outcome,
    OutcomeKind,
    ReadBody,
    ReplayBody,
    RequestBodyAborted,
    RequestBodyIO,
    Respond,
)
from bridge.middleware._core.heads import Headers as HeaderLines
from bridge.middleware._core.heads import (
    RequestHead,
    Response,
    ResponseHead,
    append_header,
    header_value,
    header_values,
    remove_header,
    set_header,
)
from bridge.middleware._core.stack import RECOMMENDED_ORDER, Layer, stack
from bridge.middleware.compression import Compression
from bridge.middleware.cors import CORS
from bridge.middleware.headers import CustomHeaders
from bridge.middleware.https_redirect import HTTPSRedirect
from bridge.middleware.proxy_headers import ProxyHeaders
from bridge.middleware.proxy_headers._plan import OriginalRequest
from bridge.middleware.request_id import RequestId, RequestIdFilter, current_request_id
from bridge.middleware.security_headers import SecurityHeaders
from bridge.middleware.trusted_host import TrustedHost

__all__ = (
    "CORS",
    "RECOMMENDED_ORDER",
    "Abort",
    "Answer",
    "BadRequest",
    "BodyTimeout",
    "Call",
    "ClientDisconnected",
    "Compression",
    "CustomHeaders",
    "Decision",
    "Effect",
    "Exchange",
    "Forward",
    "HTTPSRedirect",
    "HeaderLines",
    "Interface",
    "Layer",
    "Middleware",
    "OriginalRequest",
    "Outcome",
    "OutcomeKind",
    "ProxyHeaders",
    "ReadBody",
    "ReplayBody",
    "RequestBodyAborted",
    "RequestBodyIO",
    "RequestHead",
    "RequestId",
    "RequestIdFilter",
    "Respond",
    "Response",
    "ResponseHead",
    "SecurityHeaders",
    "TrustedHost",
    "append_header",
    "current_request_id",
    "detect_interface",
    "header_value",
    "header_values",
    "reason_phrase",
    "remove_header",
    "set_header",
    "stack",
)

#: Names this module exported before it became the author's API, and where they live now.
_MOVED: dict[str, str] = {
    "environ_with_head": "bridge.middleware._core.heads",
    "head_from_environ": "bridge.middleware._core.heads",
    "head_from_scope": "bridge.middleware._core.heads",
    "scope_with_head": "bridge.middleware._core.heads",
}


def __getattr__(name: str) -> Any:
    """The old exports, for one release, with a ``DeprecationWarning``."""
    if name == "VALUE_PREFIX":
        warnings.warn(
            "bridge.middleware.VALUE_PREFIX is deprecated and unused: per-request values "
            "are RequestHead.values, whose keys you choose (namespace them, e.g. 'myapp.x')",
            DeprecationWarning,
            stacklevel=2,
        )
        return "bridge."
    if name == "Headers":
        warnings.warn(
            "bridge.middleware.Headers is renamed CustomHeaders", DeprecationWarning, stacklevel=2
        )
        return CustomHeaders
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"bridge.middleware.{name} is internal and deprecated here; import it from {home}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
