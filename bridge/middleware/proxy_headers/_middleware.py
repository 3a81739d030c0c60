"""ProxyHeaders: trust forwarded headers from known proxies only.

Trust model: the *direct peer* (the address the server saw) decides. Only when
it is in ``trusted`` are forwarded headers read at all; the client address is
then found by walking the forwarding chain right to left, skipping trusted
hops. One family is read (``X-Forwarded-*`` or RFC 7239 ``Forwarded``), the
other is ignored, so a client cannot smuggle values through the family the
proxy does not set. Invalid values are ignored and logged; the request goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal

from bridge._http.memo import Memo
from bridge.middleware._core.base import Interface, Middleware
from bridge.middleware._core.heads import RequestHead
from bridge.middleware.proxy_headers._plan import (
    ORIGINAL_KEY,
    X_NAMES,
    Plan,
    TrustedPeers,
    make_plan,
)

__all__ = ("ORIGINAL_KEY", "ProxyHeaders")

logger: Final = logging.getLogger("bridge.middleware.proxy_headers")

_USES: Final = frozenset(X_NAMES)
#: Plans kept per middleware, and the longest header texts a plan is kept for:
#: distinct chains come from clients (through the proxy), so memory stays bounded.
_CACHE_SIZE: Final = 4096
_CACHED_TEXT: Final = 200

#: A plan's inputs: the forwarded header texts (None where absent) and the scheme.
_PlanKey = tuple[tuple[bytes | None, ...], str]


class ProxyHeaders(Middleware):
    """Rewrite client, scheme, host and root path from trusted proxies' headers.

    Options:

    * ``trusted``: IPs and CIDR ranges (IPv4 and IPv6) of the proxies whose
      headers are believed, or ``"*"`` for any peer (only when nothing but
      the proxy can reach the server). Default: loopback only
      (``127.0.0.1``, ``::1``).
    * ``mode``: ``"x-forwarded"`` (default) reads ``X-Forwarded-*`` and
      ignores ``Forwarded``; ``"forwarded"`` reads RFC 7239 ``Forwarded``
      and ignores ``X-Forwarded-*``.
    * ``use``: which values to apply, from ``"for"`` (client address),
      ``"proto"`` (scheme), ``"host"`` (Host and server name), ``"port"``
      (server port) and ``"prefix"`` (``X-Forwarded-Prefix`` becomes the
      root path). Default ``("for", "proto")``, like werkzeug's ProxyFix.
      ``"port"`` and ``"prefix"`` exist only in ``"x-forwarded"`` mode.

    The request as the server saw it is kept under ``bridge.proxy.original``
    (environ / scope key): a read-only mapping with ``client``, ``scheme``,
    ``host``, ``server`` and ``root_path``, each read from the server's environ
    or scope when first asked for. Websocket scopes are handled too (ASGI).

    .. versionadded:: 0.1
    """

    scope_types = frozenset({"http", "websocket"})

    def __init__(
        self,
        app: Any,
        *,
        trusted: Iterable[str] | str = ("127.0.0.1", "::1"),
        mode: Literal["x-forwarded", "forwarded"] = "x-forwarded",
        use: Iterable[str] = ("for", "proto"),
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.trusted = TrustedPeers(trusted)
        if mode not in ("x-forwarded", "forwarded"):
            raise ValueError(f"mode must be 'x-forwarded' or 'forwarded', not {mode!r}")
        self.mode = mode
        uses = frozenset([use] if isinstance(use, str) else use)
        if not uses <= _USES:
            raise ValueError(
                f"use: unknown values {sorted(uses - _USES)}; choose from {sorted(_USES)}"
            )
        if mode == "forwarded" and uses & {"port", "prefix"}:
            raise ValueError("Forwarded (RFC 7239) has no port or prefix; use mode='x-forwarded'")
        self.uses = uses
        names = [X_NAMES[u] for u in sorted(uses)] if mode == "x-forwarded" else [b"forwarded"]
        self._names = tuple(names)
        self._absent = (None,) * len(names)
        self._plans: Memo[_PlanKey, Plan] = Memo(self._plan, _CACHE_SIZE, keep=_short_texts)

    def decide_request(self, head: RequestHead, now: float) -> RequestHead | None:
        # Heads carry one line per name (repeats joined with ", "), as an environ does.
        texts = tuple(map(head.header, self._names))
        if texts == self._absent:
            return None  # nothing forwarded: pass through untouched
        client = head.client
        if client is None or not self.trusted.verdict[client[0]]:
            logger.info("ignored forwarded headers from untrusted peer %s", client and client[0])
            return None
        plan = self._plans[texts, head.scheme]
        if plan.problems:
            logger.warning("ignored invalid forwarded values: %s", plan.problems)
        return plan.apply(head)

    def _plan(self, key: _PlanKey) -> Plan:
        texts, scheme = key
        return make_plan(texts, self._names, self.uses, self.trusted, scheme in ("ws", "wss"))


def _short_texts(key: _PlanKey) -> bool:
    return sum(len(text) for text in key[0] if text is not None) <= _CACHED_TEXT
