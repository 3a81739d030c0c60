"""CORS: answer preflights and mark responses other origins may read."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware._core.base import Interface, Middleware, spellings
from bridge.middleware._core.exchange import Answer, Exchange
from bridge.middleware._core.heads import Headers, RequestHead, Response, ResponseHead
from bridge.middleware._cors_policy import CorsPolicy, flag, is_origin
from bridge.middleware._host_rules import quoted_for_log
from bridge.middleware._vary import merge_vary

__all__ = ("CORS",)

logger: Final = logging.getLogger("bridge.middleware.cors")
log: Final = EventLog(logger, "CORS")

_OWN: Final = frozenset(
    {
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
    }
)
_FORBIDDEN: Final = Response.text(403, "Disallowed CORS origin")
#: The names of the lines CORS sets, as a WSGI server gets them.
_SPELLINGS: Final = spellings(
    (
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Credentials",
        "Access-Control-Expose-Headers",
        "Access-Control-Allow-Methods",
        "Access-Control-Allow-Headers",
        "Access-Control-Allow-Private-Network",
        "Access-Control-Max-Age",
    )
)


class CORS(Middleware):
    """Cross-Origin Resource Sharing, the same under WSGI and ASGI.

    Options (names and defaults as Starlette's ``CORSMiddleware``):

    * ``allow_origins``: origins (``"https://example.com"``,
      ``"http://localhost:8000"``) whose pages may read responses, or
      ``["*"]`` for any. ``allow_origin_regex``: a regex an origin may fully
      match instead.
    * ``allow_methods`` (default ``("GET",)``), ``allow_headers`` (request
      headers beyond the CORS-safelisted ones), either may be ``["*"]``.
    * ``allow_credentials``: let pages send cookies and read the answers;
      not with ``allow_origins=["*"]`` (refused at construction).
    * ``expose_headers``: response headers the page may read.
    * ``max_age``: seconds a browser may cache a preflight (default 600).
    * ``allow_private_network``: answer Private Network Access preflights.
    * ``check_websocket_origin``: refuse websocket handshakes (ASGI) from
      an Origin that is not allowed (default False: handshakes pass).
    * ``exempt``: requests CORS leaves alone (no CORS headers, no
      ``Vary: Origin``, preflights go to the app): path patterns or a
      function of the head (see docs/middleware/configuring.md). To serve
      CORS under ``/api`` only, as django-cors-headers' ``CORS_URLS_REGEX``
      does: ``exempt=re.compile(r"(?!/api(?![^/]))")`` (every path not under it).

    A preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) is answered here, 200 or 400 with the
    reason, and never reaches the app. Every other response gets
    ``Vary: Origin`` merged into the app's Vary, and the CORS headers when its
    origin is allowed.

    .. versionadded:: 0.1
    """

    scope_types = frozenset({"http", "websocket"})

    def __init__(
        self,
        app: Any,
        *,
        allow_origins: Iterable[str] = (),
        allow_origin_regex: str | None = None,
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
        allow_private_network: bool = False,
        check_websocket_origin: bool = False,
        exempt: Exempt = None,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.policy = CorsPolicy(
            allow_origins=allow_origins,
            allow_origin_regex=allow_origin_regex,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials,
            expose_headers=expose_headers,
            max_age=max_age,
            allow_private_network=allow_private_network,
        )
        self.check_websocket_origin = flag(check_websocket_origin, "check_websocket_origin")
        self.header_spellings = _SPELLINGS
        self.exempt = exempt_matcher(exempt, "CORS: exempt")

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        if self.exempt is not None and self.exempt(head):
            return None
        value = head.header(b"origin")
        origin = None if value is None else value.decode("latin-1")
        if head.scheme in ("ws", "wss"):
            return self._websocket(head, now, origin)
        if origin is not None:
            if head.method == "OPTIONS":
                method = head.header(b"access-control-request-method")
                if method is not None:
                    return Answer(head, now, self._preflight(head, origin, method))
            lines = self.policy.actual_lines(origin)
            if lines is not None:
                return _ActualExchange(head, now, lines)
            if not is_origin(origin) and origin != "null":
                log.warning("ignored", head, "malformed Origin %s", quoted_for_log(origin))
        return _ActualExchange(head, now, None)

    def _preflight(self, head: RequestHead, origin: str, method: bytes) -> Response:
        requested = head.header(b"access-control-request-headers")
        private = head.header(b"access-control-request-private-network") is not None
        response, refused = self.policy.preflight(origin, method, requested, private)
        if refused:
            shown = quoted_for_log(origin)
            log.warning("refused", head, "preflight from Origin %s: %s", shown, ", ".join(refused))
        return response

    def _websocket(self, head: RequestHead, now: float, origin: str | None) -> Exchange | None:
        if not self.check_websocket_origin or origin is None or self.policy.allows(origin):
            return None
        log.warning("refused", head, "websocket handshake from Origin %s", quoted_for_log(origin))
        return Answer(head, now, _FORBIDDEN)


class _ActualExchange(Exchange):
    """Adds Vary: Origin to the app's response, and ``lines`` (the CORS headers of an
    allowed origin) when set."""

    __slots__ = ("lines",)
    response_on_failure = True  # a browser shows the page the 500 only with CORS lines

    def __init__(self, head: RequestHead, now: float, lines: Headers | None) -> None:
        self.head = head
        self.now = now
        self.lines = lines

    def response(self, head: ResponseHead) -> ResponseHead:
        headers = head.headers
        lines = self.lines
        for name, _value in headers:
            lowered = name.lower()
            if lowered == b"vary" or lowered in _OWN:
                break
        else:  # the usual case: the app set neither Vary nor a CORS header
            added = _VARY_ONLY if lines is None else lines
            return head.replace(headers=headers + added)
        headers = merge_vary(headers, b"Origin")
        if lines is not None:
            headers = _replace_own(headers) + lines[1:]  # lines[0] is the Vary line
        return head.replace(headers=headers)


_VARY_ONLY: Final = ((b"vary", b"Origin"),)


def _replace_own(headers: Headers) -> Headers:
    """``headers`` without the CORS lines this middleware sets (the policy decides them)."""
    if any(name.lower() in _OWN for name, _ in headers):
        return tuple(pair for pair in headers if pair[0].lower() not in _OWN)
    return headers
