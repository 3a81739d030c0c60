"""Middleware written once, identical under WSGI and ASGI.

The core (see docs/middleware/writing.md): a :class:`Middleware` subclass is
configured once and creates an :class:`Exchange` per request; the exchange sees
an immutable :class:`RequestHead`, decides (:class:`Forward` or
:class:`Respond`, yielding :class:`Effect` objects when it needs I/O), sees
the :class:`ResponseHead` before it is sent and is told how the request ended
(:class:`Outcome`). The WSGI and ASGI drivers do all the I/O.
"""

from __future__ import annotations

from bridge._http.status import reason_phrase
from bridge.middleware._core.base import Interface, Middleware, detect_interface
from bridge.middleware._core.convert import (
    VALUE_PREFIX,
    environ_with_head,
    head_from_environ,
    head_from_scope,
    scope_with_head,
)
from bridge.middleware._core.exchange import (
    Abort,
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
from bridge.middleware._core.stack import Layer, stack
from bridge.middleware.compression import Compression
from bridge.middleware.cors import CORS
from bridge.middleware.headers import Headers
from bridge.middleware.https_redirect import HTTPSRedirect
from bridge.middleware.proxy_headers import ProxyHeaders
from bridge.middleware.proxy_headers._plan import OriginalRequest
from bridge.middleware.request_id import RequestId, RequestIdFilter, current_request_id
from bridge.middleware.security_headers import SecurityHeaders
from bridge.middleware.trusted_host import TrustedHost

__all__ = (
    "CORS",
    "VALUE_PREFIX",
    "Abort",
    "BodyTimeout",
    "Call",
    "ClientDisconnected",
    "Compression",
    "Decision",
    "Effect",
    "Exchange",
    "Forward",
    "HTTPSRedirect",
    "HeaderLines",
    "Headers",
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
    "environ_with_head",
    "head_from_environ",
    "head_from_scope",
    "header_value",
    "header_values",
    "reason_phrase",
    "remove_header",
    "scope_with_head",
    "set_header",
    "stack",
)
