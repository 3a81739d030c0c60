"""Sans-IO parsing of forwarded headers and the proxy trust check.

Every function takes plain values and returns plain values (or None for
malformed input); nothing here logs, reads a clock or touches a request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

from bridge._http.memo import Memo

__all__ = (
    "TrustedPeers",
    "parse_forwarded",
    "parse_host",
    "parse_node",
    "parse_prefix",
    "parse_proto",
    "walk_chain",
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Hops examined from the right of a forwarding chain; the walk is bounded by it.
MAX_HOPS: Final = 64


class TrustedPeers:
    """Which peer addresses are trusted proxies: IPs and CIDR ranges, or ``"*"``.

    ``peers.verdict[host]`` is True for a trusted ``host``: decided once per
    distinct address and then a dict lookup (at most 4096 kept); ``host in
    peers`` says the same.
    """

    _CACHE_SIZE: Final = 4096

    def __init__(self, trusted: Iterable[str] | str) -> None:
        entries = [trusted] if isinstance(trusted, str) else list(trusted)
        self.everyone = "*" in entries
        self.networks: tuple[_Network, ...] = tuple(
            _network(entry) for entry in entries if entry != "*"
        )
        self.verdict: Memo[str, bool] = Memo(self._lookup, self._CACHE_SIZE)

    def __contains__(self, host: str) -> bool:
        return self.verdict[host]

    def _lookup(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks if net.version == address.version)


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


# -- node addresses ("for" values) ---------------------------------------------


def parse_node(text: str) -> tuple[str, int] | None:
    """``ip``, ``ip:port``, ``[ipv6]`` or ``[ipv6]:port`` as ``(ip, port)`` (port 0 if absent)."""
    text = text.strip().strip('"')
    port = "0"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] or "0"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host = text
    if not port.isdigit() or int(port) > 65535:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address), int(port)


def walk_chain(nodes: list[str], trusted: TrustedPeers) -> tuple[int, tuple[str, int] | None]:
    """Walk ``nodes`` right to left, skipping trusted hops.

    Returns ``(index, node)`` of the first untrusted node (the client), or of
    the leftmost node when every hop is trusted; ``(index, None)`` when the
    walk meets a malformed node at ``index`` first, or passes
    :data:`MAX_HOPS` trusted hops.
    """
    last = max(-1, len(nodes) - 1 - MAX_HOPS)
    for index in range(len(nodes) - 1, last, -1):
        node = parse_node(nodes[index])
        if node is None:
            return index, None
        if node[0] not in trusted:
            return index, node
    if last >= 0:
        return last, None  # more trusted hops than any real deployment: refuse to guess
    return 0, parse_node(nodes[0])


# -- other forwarded values ----------------------------------------------------

_PROTOS: Final = frozenset({"http", "https", "ws", "wss"})
_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST: Final = re.compile(
    rf"(?P<name>{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{{1,5}}))?"
)
_PREFIX: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")


def parse_proto(value: str) -> str | None:
    """A validated protocol (http, https, ws, wss), lowercase."""
    proto = value.strip().lower()
    return proto if proto in _PROTOS else None


def parse_host(value: str) -> tuple[str, int | None] | None:
    """A validated ``host[:port]`` as ``(host, port or None)``."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return None
    name = match["name"]
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    port = match["port"]
    if port is not None and not 0 < int(port) <= 65535:
        return None
    return name.lower(), None if port is None else int(port)


def parse_port(value: str) -> int | None:
    text = value.strip()
    if text.isdigit() and len(text) <= 5 and 0 < int(text) <= 65535:
        return int(text)
    return None


def parse_prefix(value: str) -> tuple[str, str] | None:
    """A validated path prefix as ``(decoded, raw)``; no trailing slash."""
    raw = value.strip().rstrip("/")
    if not raw:
        return None
    if not _PREFIX.fullmatch(raw) or "//" in raw:
        return None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if any(part in (".", "..") for part in decoded.split("/")):
        return None
    return decoded, raw


# -- RFC 7239 Forwarded ----------------------------------------------------------

_PAIR: Final = re.compile(
    r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(\"(?:[^\"\\]|\\.)*\"|[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]*)\s*"
)


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header, each a dict of lowercase keys; None if malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _PAIR.match(value, position)
        if match is None:
            return None
        key, raw = match[1].lower(), match[2]
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key in current:
            return None
        current[key] = raw
        position = match.end()
        separator = value[position : position + 1]
        position += 1
        if separator == ",":
            elements.append(current)
            current = {}
        elif separator not in (";", ""):
            return None
    elements.append(current)
    return elements
