"""ProxyHeaders: trust forwarded headers from known proxies only.

Trust model: the *direct peer* (the address the server saw) decides. Only when
it is in ``trusted`` are forwarded headers read at all; the client address is
then found by walking the forwarding chain right to left, skipping trusted
hops (or, in ``x-real-ip`` mode, taken from the one address the nearest proxy
set). One family is read (``X-Forwarded-*`` or RFC 7239 ``Forwarded``), the
other is ignored, so a client cannot smuggle values through the family the
proxy does not set; with ``strip_ignored`` the ignored headers are removed,
so nothing downstream reads them either. Invalid values are ignored and
logged (one line a request); the request goes on.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, TypeAlias, get_args

from bridge._http.logfields import EventLog
from bridge._http.memo import Memo
from bridge.middleware._core.base import Interface, Middleware
from bridge.middleware._core.heads import RequestHead, lines_named
from bridge.middleware.proxy_headers._plan import (
    FAMILY,
    ORIGINAL_KEY,
    X_NAMES,
    Plan,
    header_names,
    make_plan,
    without_lines,
)

__all__ = ("ORIGINAL_KEY", "ProxyHeaders", "ProxyMode", "ProxyUse")

#: Which headers ProxyHeaders reads (``mode=``).
ProxyMode: TypeAlias = Literal["x-forwarded", "x-real-ip", "forwarded"]
#: Which forwarded values ProxyHeaders applies (``use=``).
ProxyUse: TypeAlias = Literal["for", "proto", "host", "port", "prefix"]

logger: Final = logging.getLogger("bridge.middleware.proxy_headers")
log: Final = EventLog(logger, "ProxyHeaders")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_USES: Final = frozenset(X_NAMES)
_MODES: Final = get_args(ProxyMode)
#: Plans kept per middleware, and the longest header texts a plan is kept for:
#: distinct chains come from clients (through the proxy), so memory stays bounded.
_CACHE_SIZE: Final = 4096
_CACHED_TEXT: Final = 200

#: A plan's inputs: the forwarded header lines (name, text) and the scheme.
_PlanKey = tuple[tuple[tuple[bytes, bytes], ...], str]


class ProxyHeaders(Middleware):
    """Rewrite client, scheme, host and root path from trusted proxies' headers.

    Options:

    * ``trusted``: IPs and CIDR ranges (IPv4 and IPv6) of the proxies whose
      headers are believed, as a list or one comma-separated string
      (``"10.0.0.1,10.0.0.2"``, the form of uvicorn's and gunicorn's
      ``FORWARDED_ALLOW_IPS``), or ``"*"`` for any peer (only when nothing but
      the proxy can reach the server), and ``"unix"`` for a proxy that connects
      over a Unix socket: a peer the server gives no address for (gunicorn's
      empty ``REMOTE_ADDR``, ``scope["client"]`` None, as gunicorn itself
      assumes) or names ``"localhost"`` (waitress).
      Default: the same machine (``127.0.0.1``, ``::1``, ``"unix"``). An empty
      list or string trusts no peer.
    * ``mode``: ``"x-forwarded"`` (default) reads ``X-Forwarded-*``;
      ``"x-real-ip"`` reads the client from ``X-Real-IP`` (one address, set by
      the nearest proxy) and the other values from ``X-Forwarded-*``;
      ``"forwarded"`` reads RFC 7239 ``Forwarded``. The headers a mode does
      not read are ignored.
    * ``use``: which values to apply, from ``"for"`` (client address),
      ``"proto"`` (scheme), ``"host"`` (Host and server name), ``"port"``
      (server port) and ``"prefix"`` (``X-Forwarded-Prefix`` becomes the
      root path). Default ``("for", "proto")``, like werkzeug's ProxyFix;
      ``("for",)`` in ``"x-real-ip"`` mode, whose usual nginx configuration
      sets no ``X-Forwarded-Proto`` (a client's own would pass through).
      ``"port"`` and ``"prefix"`` do not exist in ``"forwarded"`` mode.
    * ``strip_ignored`` (default True): remove the forwarded headers
      (``Forwarded``, ``X-Forwarded-For/-Proto/-Host/-Port/-Prefix``,
      ``X-Real-IP``) that were not applied: all of them from an untrusted
      peer, and those the mode and ``use`` do not read from a trusted one, so
      nothing downstream (Django's ``SECURE_PROXY_SSL_HEADER``, a logger)
      believes a value the client chose.

    The request as the server saw it is kept under ``bridge.proxy.original``
    (environ / scope key): a read-only mapping with ``client``, ``scheme``,
    ``host``, ``server`` and ``root_path``, each read from the server's environ
    or scope when first asked for. Websocket scopes are handled too (ASGI).

    .. versionadded:: 0.1
    .. versionchanged:: Unreleased
       ``mode="x-real-ip"``, ``strip_ignored`` (on by default), and
       ``trusted`` as a comma-separated string.
    """

    scope_types = frozenset({"http", "websocket"})

    def __init__(
        self,
        app: Any,
        *,
        trusted: Iterable[str] | str = ("127.0.0.1", "::1", "unix"),
        mode: ProxyMode = "x-forwarded",
        use: ProxyUse | Iterable[ProxyUse] | None = None,
        strip_ignored: bool = True,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.trusted = TrustedPeers(trusted)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, not {mode!r}")
        self.mode = mode
        if use is None:
            use = ("for",) if mode == "x-real-ip" else ("for", "proto")
        uses: frozenset[str] = frozenset([use] if isinstance(use, str) else use or ())
        if not uses <= _USES:
            raise ValueError(
                f"use: unknown values {sorted(uses - _USES)}; choose from {sorted(_USES)}"
            )
        if mode == "forwarded" and uses & {"port", "prefix"}:
            raise ValueError("Forwarded (RFC 7239) has no port or prefix; use mode='x-forwarded'")
        self.uses = uses
        self.strip_ignored = bool(strip_ignored)
        self._names = header_names(mode, uses)
        #: The forwarded headers a trusted peer's request loses (none unless stripping).
        self._unread = FAMILY - set(self._names) if strip_ignored else frozenset()
        self._plans: Memo[_PlanKey, Plan] = Memo(self._plan, _CACHE_SIZE, keep=_short_texts)

    def decide_request(self, head: RequestHead, now: float) -> RequestHead | None:
        # Heads hold one line per name (repeats joined with ", ").
        found = lines_named(head, FAMILY)
        if not found:
            return None  # nothing forwarded: pass through untouched
        client = head.client
        # No client address: a Unix socket peer (what gunicorn assumes too).
        if not (self.trusted.unix if client is None else self.trusted.verdict[client[0]]):
            return self._untrusted(head, found)
        plan = self._plans[tuple(found.items()), head.scheme]
        rewritten, problems = plan.apply(head)
        drop = plan.drop
        if problems:
            removed = f" (removed unread: {_listed(drop)})" if drop else ""
            log.warning("ignored", head, "invalid forwarded values: %s%s", problems, removed)
        elif drop:
            log.info("removed", head, "forwarded headers it does not read: %s", _listed(drop))
        return rewritten

    def _untrusted(self, head: RequestHead, found: dict[bytes, bytes]) -> RequestHead | None:
        if not self.strip_ignored:
            log.info("ignored", head, "forwarded headers from an untrusted peer")
            return None
        log.info("removed", head, "forwarded headers from an untrusted peer: %s", _listed(found))
        return head.replace(headers=without_lines(head.headers, FAMILY))

    def _plan(self, key: _PlanKey) -> Plan:
        lines, scheme = key
        found = dict(lines)
        texts = tuple(map(found.get, self._names))
        websocket = scheme in ("ws", "wss")
        drop = self._unread.intersection(found)
        return make_plan(texts, self._names, self.uses, self.trusted, websocket, drop)


class TrustedPeers:
    """Which peer addresses are trusted proxies: IPs and CIDR ranges, or ``"*"``.

    ``trusted`` is a list of entries or one string of comma-separated entries
    (``"10.0.0.1,10.0.0.2"``, as uvicorn's and gunicorn's FORWARDED_ALLOW_IPS).

    ``peers.verdict[host]`` is True for a trusted ``host``: decided once per
    distinct address and then a dict lookup (at most 4096 kept); ``host in
    peers`` says the same for a hop of a forwarding chain. ``unix`` is True when
    the entries hold ``"unix"`` (or ``"unix:"``): peers on a Unix socket, which
    have no address (waitress names them ``"localhost"``, which no TCP peer is).
    """

    _CACHE_SIZE: Final = 4096

    def __init__(self, trusted: Iterable[str] | str) -> None:
        entries = trusted.split(",") if isinstance(trusted, str) else list(trusted)
        if isinstance(trusted, str):
            entries = [entry.strip() for entry in entries if entry.strip()]
        named = {entry for entry in entries if isinstance(entry, str)}
        self.everyone = "*" in named
        self.unix = not _UNIX.isdisjoint(named)
        self.networks: tuple[_Network, ...] = tuple(
            _network(entry) for entry in entries if not (isinstance(entry, str) and entry in _WORDS)
        )
        self.verdict: Memo[str, bool] = Memo(self._lookup, self._CACHE_SIZE)

    def __contains__(self, host: object) -> bool:
        # A hop of a forwarding chain is an address: "localhost" there is a client's word.
        return isinstance(host, str) and host != "localhost" and self.verdict[host]

    def _lookup(self, host: str) -> bool:
        if self.everyone:
            return True
        if host == "localhost":  # waitress's name for a Unix socket peer
            return self.unix
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks if net.version == address.version)


#: The ``trusted`` entries for a proxy on a Unix socket (uvicorn's pending spelling too).
_UNIX: Final = frozenset({"unix", "unix:"})
_WORDS: Final = _UNIX | {"*"}


def _network(entry: str) -> _Network:
    if not isinstance(entry, str):
        raise TypeError(f"trusted entries must be str (an IP or CIDR range), not {entry!r}")
    try:
        return ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
    except ValueError:
        raise ValueError(
            f"trusted entry {entry!r} is not an IP address or CIDR range "
            "(e.g. '10.0.0.1', '10.0.0.0/8', 'fd00::/8'), or '*' for everyone"
        ) from None


def _listed(names: Iterable[bytes]) -> str:
    return ", ".join(sorted(name.decode("latin-1") for name in names))


def _short_texts(key: _PlanKey) -> bool:
    return sum(len(text) for _, text in key[0]) <= _CACHED_TEXT
