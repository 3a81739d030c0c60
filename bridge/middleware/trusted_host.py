"""TrustedHost: refuse requests whose Host is not one the app serves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge._http.memo import Memo
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware._core.base import Interface, Middleware
from bridge.middleware._core.heads import RequestHead, Response
from bridge.middleware._host_rules import (
    HostPatterns,
    absolute_url,
    quoted_for_log,
    redirect,
    split_host,
)

__all__ = ("TrustedHost",)

logger: Final = logging.getLogger("bridge.middleware.trusted_host")
log: Final = EventLog(logger, "TrustedHost")

#: HTTP versions whose requests may come without a Host header (RFC 9112 3.2 requires it
#: from 1.1 on; HTTP/2 and 3 servers give the :authority as Host).
_HOST_OPTIONAL: Final = frozenset({"0.9", "1.0"})
_INVALID: Final = Response.text(400, "Invalid host header")
_MISSING: Final = Response.text(400, "Missing host header")


class TrustedHost(Middleware):
    """Answer 400 to a request whose Host header is not in ``allowed_hosts``.

    Options:

    * ``allowed_hosts``: host patterns, default ``("*",)``: any well-formed
      host. ``"example.com"`` matches that name on any port,
      ``"example.com:8443"`` only on that port, ``"*.example.com"`` any
      subdomain (not example.com itself), ``".example.com"`` example.com and
      any subdomain (Django's spelling), ``"[::1]"`` an IPv6 literal.
      Validated at construction.
    * ``www_redirect``: True (default) redirects (307) a request for
      ``example.com`` to ``www.example.com`` when only the latter is allowed
      (by name, not by a wildcard), as Starlette's TrustedHostMiddleware does.
    * ``exempt``: requests served whatever their Host: path patterns (e.g.
      ``["=/healthz"]`` for a load balancer's health check, which asks by IP
      address; see docs/middleware/configuring.md) or a function of the head.
      Only a refused request is checked against it. An exempt endpoint must not
      build links from the Host it is given.

    A malformed Host (not a name or IP literal with an optional port, as
    Django's ``validate_host`` defines it) is refused even with ``"*"``, and
    so is a missing Host on HTTP/1.1 and later. Each refusal is one warning on
    the ``bridge.middleware.trusted_host`` logger naming the host. Websocket
    handshakes are checked too (a refusal closes the handshake: HTTP 403).
    Put it inside :class:`~bridge.ProxyHeaders` (which may rewrite Host) when
    both are used.

    .. versionadded:: 0.1
    """

    scope_types = frozenset({"http", "websocket"})

    def __init__(
        self,
        app: Any,
        *,
        allowed_hosts: Iterable[str] | str = ("*",),
        www_redirect: bool = True,
        exempt: Exempt = None,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.allowed = HostPatterns(allowed_hosts, "allowed_hosts")
        if not isinstance(www_redirect, bool):
            raise TypeError(f"www_redirect must be True or False, not {www_redirect!r}")
        self.www_redirect = www_redirect and not self.allowed.any
        self.verdicts: Memo[bytes, str] = Memo(self._verdict, size=256)
        self.exempt = exempt_matcher(exempt, "TrustedHost: exempt")

    def decide_request(self, head: RequestHead, now: float) -> Response | None:
        value = head.header(b"host")
        if value is None:
            if head.http_version in _HOST_OPTIONAL or self._exempts(head):
                return None
            log.warning("refused", head, "no Host header; sent 400")
            return _MISSING
        verdict = self.verdicts[value]
        if verdict is _ALLOWED or self._exempts(head):
            return None
        host = value.decode("latin-1")
        if verdict is _WWW:
            return _www_redirect(head, "www." + host.lower())
        log.warning("refused", head, "Host %s not in allowed_hosts; sent 400", quoted_for_log(host))
        return _INVALID

    def _exempts(self, head: RequestHead) -> bool:
        return self.exempt is not None and self.exempt(head)

    def _verdict(self, value: bytes) -> str:
        """What a Host header of ``value`` gets: allowed, a www redirect, or refused."""
        parsed = split_host(value.decode("latin-1"))
        if parsed is not None:
            domain, port = parsed
            if self.allowed.allows(domain, port):
                return _ALLOWED
            if self.www_redirect and self.allowed.names("www." + domain, port):
                return _WWW
        return _REFUSED


#: Verdicts on a Host value (kept per middleware: clients send a few values, over and over).
_ALLOWED: Final = "allowed"
_WWW: Final = "www"
_REFUSED: Final = "refused"


def _www_redirect(head: RequestHead, host: str) -> Response:
    scheme = "https" if head.scheme in ("https", "wss") else "http"
    return redirect(307, absolute_url(scheme, host, head.raw_path, head.query_string))
