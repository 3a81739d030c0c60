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
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import quote

from ._base import Interface, Middleware
from ._forwarded import (
    TrustedPeers,
    parse_forwarded,
    parse_host,
    parse_port,
    parse_prefix,
    parse_proto,
    walk_chain,
)
from ._heads import RequestHead, set_header

__all__ = ("ORIGINAL_KEY", "ProxyHeaders")

logger: Final = logging.getLogger("bridge.middleware.proxy_headers")

#: ``values`` key (environ / scope key) holding the request as the server saw it.
ORIGINAL_KEY: Final = "bridge.proxy.original"

_X_NAMES: Final = {
    "for": b"x-forwarded-for",
    "proto": b"x-forwarded-proto",
    "host": b"x-forwarded-host",
    "port": b"x-forwarded-port",
    "prefix": b"x-forwarded-prefix",
}
_USES: Final = frozenset(_X_NAMES)
_USE_OF: Final = {name: use for use, name in _X_NAMES.items()}
_CACHE_SIZE: Final = 4096
_CACHED_CHAIN: Final = 200
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


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
    (environ / scope key): a dict with ``client``, ``scheme``, ``host``,
    ``server`` and ``root_path``. Websocket scopes are handled too (ASGI).

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
        names = [_X_NAMES[u] for u in sorted(uses)] if mode == "x-forwarded" else [b"forwarded"]
        self._names = tuple(names)
        self._chains: dict[str, tuple[tuple[str, int] | None, str]] = {}

    def client_from_chain(self, chain: str) -> tuple[tuple[str, int] | None, str]:
        """The client of an X-Forwarded-For chain, or None and the bad entry (cached)."""
        found = self._chains.get(chain)
        if found is None:
            nodes = chain.split(",")
            index, node = walk_chain(nodes, self.trusted)
            found = (node, nodes[index].strip()[:100])
            if len(chain) <= _CACHED_CHAIN:  # bounded memory: short chains only
                if len(self._chains) >= _CACHE_SIZE:
                    self._chains.clear()
                self._chains[chain] = found
        return found

    def decide_request(self, head: RequestHead, now: float) -> RequestHead | None:
        found: dict[bytes, str] | None = None
        for name in self._names:
            value = head.header(name)
            if value is not None:
                if found is None:
                    found = {}
                # Heads carry one line per name (repeats joined with ", "), as an environ does.
                found[name] = value.decode("latin-1")
        if found is None:
            return None  # nothing forwarded: pass through untouched
        peer = head.client[0] if head.client is not None else None
        if peer is None or peer not in self.trusted:
            logger.info("ignored forwarded headers from untrusted peer %s", peer)
            return None
        return _Rewrite(head, self, found).head_to_forward()


class _Rewrite:
    """One request's forwarded values from a trusted peer, applied to its head."""

    __slots__ = ("found", "head", "mw", "problems")

    def __init__(self, head: RequestHead, mw: ProxyHeaders, found: dict[bytes, str]) -> None:
        self.head = head
        self.mw = mw
        self.found = found
        self.problems: list[str] = []

    def head_to_forward(self) -> RequestHead:
        values = self.x_forwarded() if self.mw.mode == "x-forwarded" else self.forwarded()
        head = self.apply(values) if values else self.head
        if self.problems:
            logger.warning("ignored invalid forwarded values: %s", "; ".join(self.problems))
        return head

    # -- reading the headers --

    def _joined(self, name: bytes) -> str | None:
        return self.found.get(name)

    def x_forwarded(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, text in self.found.items():  # only the headers in use were read
            use = _USE_OF[name]
            if use != "for":
                # The nearest proxy's value (the last one) is the one it set.
                values[use] = text.rsplit(",", 1)[-1].strip() if "," in text else text.strip()
                continue
            node, problem = self.mw.client_from_chain(text)
            if node is None:
                self.problems.append(f"X-Forwarded-For entry {problem!r}")
            else:
                values["for"] = node
        return values

    def forwarded(self) -> dict[str, Any]:
        text = self._joined(b"forwarded") or ""
        elements = parse_forwarded(text)
        if not elements:
            self.problems.append(f"Forwarded header {text[:100]!r}")
            return {}
        nodes = [element.get("for", "") for element in elements]
        index, node = walk_chain(nodes, self.mw.trusted)
        values: dict[str, Any] = {}
        if node is None:
            self.problems.append(f"Forwarded for={nodes[index]!r}")
            return values
        if "for" in self.mw.uses:
            values["for"] = node
        # The element the client's first trusted proxy wrote describes the client side.
        element = elements[index]
        for use in ("proto", "host"):
            if use in self.mw.uses and use in element:
                values[use] = element[use]
        return values

    # -- applying them --

    def apply(self, values: dict[str, Any]) -> RequestHead:
        head = self.head
        changes: dict[str, Any] = {}
        client = values.get("for")
        if client is not None:
            changes["client"] = client
        proto = values.get("proto")
        scheme = None if proto is None else self._scheme(proto)
        if scheme is not None:
            changes["scheme"] = scheme
        if "host" in values or "port" in values:
            self._host(values, scheme or head.scheme, changes)
        if "prefix" in values:
            self._prefix(values["prefix"], changes)
        if not changes:
            return head
        original = {
            "client": head.client,
            "scheme": head.scheme,
            "host": head.host,
            "server": head.server,
            "root_path": head.root_path,
        }
        changes["values"] = MappingProxyType({**head.values, ORIGINAL_KEY: original})
        return head.replace(**changes)

    def _scheme(self, proto_text: str) -> str | None:
        proto = parse_proto(proto_text)
        if proto is None:
            self.problems.append(f"X-Forwarded-Proto {proto_text[:40]!r}")
            return None
        secure = proto in ("https", "wss")
        if self.head.scheme in ("ws", "wss"):
            return "wss" if secure else "ws"
        return "https" if secure else "http"

    def _host(self, values: dict[str, Any], scheme: str, changes: dict[str, Any]) -> None:
        host_text, port_text = values.get("host"), values.get("port")
        if host_text is None and port_text is None:
            return
        parsed = parse_host(host_text) if host_text is not None else None
        if host_text is not None and parsed is None:
            self.problems.append(f"forwarded host {host_text[:100]!r}")
        port = parse_port(port_text) if port_text is not None else None
        if port_text is not None and port is None:
            self.problems.append(f"X-Forwarded-Port {port_text[:20]!r}")
        if parsed is None and port is None:
            return
        if parsed is None:
            current = parse_host(self.head.host or "")
            if current is None:
                return
            parsed = current
        name, host_port = parsed
        port = port or host_port or _DEFAULT_PORTS.get(scheme, 80)
        header = name if port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
        changes["headers"] = set_header(self.head.headers, b"host", header.encode("latin-1"))
        changes["server"] = (name.strip("[]"), port)

    def _prefix(self, prefix_text: str | None, changes: dict[str, Any]) -> None:
        if prefix_text is None:
            return
        parsed = parse_prefix(prefix_text)
        if parsed is None:
            self.problems.append(f"X-Forwarded-Prefix {prefix_text[:100]!r}")
            return
        decoded, raw = parsed
        head = self.head
        changes["root_path"] = decoded + head.root_path
        changes["path"] = decoded + head.path
        changes["raw_path"] = quote(raw, safe="/%;=,:@!$&'()*+~").encode("ascii") + head.raw_path
