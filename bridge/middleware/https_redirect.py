"""HTTPSRedirect: send plain-HTTP requests to the same URL over HTTPS."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware._core.base import Interface, Middleware
from bridge.middleware._core.heads import RequestHead, Response
from bridge.middleware._host_rules import absolute_url, quoted_for_log, redirect, split_host

__all__ = ("HTTPSRedirect",)

logger: Final = logging.getLogger("bridge.middleware.https_redirect")
log: Final = EventLog(logger, "HTTPSRedirect")

_SECURE: Final = {"http": "https", "ws": "wss"}
_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: Ports dropped from the redirect's host, as Starlette's HTTPSRedirectMiddleware does.
_DEFAULT_PORTS: Final = frozenset({"80", "443"})
_INVALID: Final = Response.text(400, "Invalid host header")


class HTTPSRedirect(Middleware):
    """Redirect ``http`` (and ``ws``) requests to ``https`` (and ``wss``).

    The redirect keeps the host, the root path, the path and the query exactly
    as the client sent them (percent-escapes included). Port 80 or 443 in the
    Host is dropped; any other port is kept.

    Options:

    * ``status``: 308 (default; keeps the method and body), 301, 302, 303 or 307.
    * ``exempt``: requests served over plain HTTP too: path patterns (e.g.
      ``["/.well-known"]``, see docs/middleware/configuring.md) or a function of the head.

    The scheme checked is the request's, as resolved by :class:`~bridge.ProxyHeaders`
    when it runs outside. A plain-HTTP request whose (unapplied) ``X-Forwarded-Proto``
    or ``Forwarded`` says https is still redirected, with one warning (the first
    time only): behind a TLS-terminating proxy without ProxyHeaders the client
    would loop. A Host
    that is not a host name gets 400 and one warning on
    ``bridge.middleware.https_redirect``. A websocket handshake over
    ``ws`` cannot follow a redirect: it is refused (HTTP 403).

    .. versionadded:: 0.1
    """

    scope_types = frozenset({"http", "websocket"})
    passes_schemes = frozenset(_SECURE.values())  # decided from the scheme alone: no head

    def __init__(
        self,
        app: Any,
        *,
        status: int = 308,
        exempt: Exempt = None,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        if status not in _STATUSES or isinstance(status, bool):
            raise ValueError(f"status must be one of {sorted(_STATUSES)}, not {status!r}")
        self.status = status
        self.exempt = exempt_matcher(exempt, "HTTPSRedirect: exempt")
        self._loop_reported = False  # the redirect-loop warning went out

    def decide_request(self, head: RequestHead, now: float) -> Response | None:
        secure = _SECURE.get(head.scheme)
        if secure is None:
            return None
        if self.exempt is not None and self.exempt(head):
            return None
        host = _host(head)
        if host is None:
            shown = quoted_for_log(head.host or "")
            log.warning("refused", head, "cannot redirect to Host %s; sent 400", shown)
            return _INVALID
        if not self._loop_reported and _forwarded_as_secure(head):  # it would come back: a loop
            self._loop_reported = True  # a configuration problem: once, not per request
            log.warning("redirected", head, _LOOP_HINT, self.status)
        return redirect(self.status, absolute_url(secure, host, head.raw_path, head.query_string))


_LOOP_HINT: Final = (
    "sent %d to https for a request a proxy says came over https (X-Forwarded-Proto or "
    "Forwarded proto): the client will loop; put ProxyHeaders outside HTTPSRedirect, "
    "trusting that proxy"
)


def _forwarded_as_secure(head: RequestHead) -> bool:
    """True when the request's forwarded headers (not applied: its scheme is plain) say
    the client's scheme was https."""
    proto = head.header(b"x-forwarded-proto")
    if proto is not None and proto.split(b",")[0].strip().lower() in (b"https", b"wss"):
        return True
    forwarded = head.header(b"forwarded")
    return forwarded is not None and b"proto=https" in forwarded.lower().replace(b'"', b"")


def _host(head: RequestHead) -> str | None:
    """The host (and port, unless 80 or 443) to redirect to, or None when malformed."""
    value = head.host
    if value is None:  # HTTP/1.0 without Host: the server's own name
        if head.server is None:
            return None
        name, number = head.server
        value = name if number is None else f"{name}:{number}"
    parsed = split_host(value)
    if parsed is None:
        return None
    domain, port = parsed
    return domain if not port or port in _DEFAULT_PORTS else f"{domain}:{port}"
