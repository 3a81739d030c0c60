"""Sans-IO core of ProxyHeaders: what forwarded headers say, and the head they give.

Every function takes plain values and returns plain values (None for malformed
input); nothing here logs, reads a clock or touches a socket. ``trusted`` is
any container of trusted addresses (``address in trusted``). A :class:`Plan`
is a pure function of the forwarded header texts, the mode, the values in use,
the trusted peers and whether the request is a websocket; ``ProxyHeaders``
caches plans by those texts, so a client whose proxy sends the same headers
again costs a dict lookup. Applying a plan to a head is the only per-request
step, and it reads the head only for what the plan changes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Container, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import unquote

from bridge._http.paths import quote_path
from bridge.middleware._core.heads import Headers, RequestHead, set_header

__all__ = (
    "FAMILY",
    "ORIGINAL_KEY",
    "X_NAMES",
    "OriginalRequest",
    "Plan",
    "header_names",
    "make_plan",
    "parse_forwarded",
    "parse_host",
    "parse_node",
    "parse_prefix",
    "parse_proto",
    "walk_chain",
    "without_lines",
)

#: Hops examined from the right of a forwarding chain; the walk is bounded by it.
MAX_HOPS: Final = 64


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


def walk_chain(nodes: list[str], trusted: Container[str]) -> tuple[int, tuple[str, int] | None]:
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


# -- plans --------------------------------------------------------------------


#: ``values`` key (environ / scope key) holding the request as the server saw it.
ORIGINAL_KEY: Final = "bridge.proxy.original"

#: The X-Forwarded-* header of each value ProxyHeaders can use.
X_NAMES: Final = {
    "for": b"x-forwarded-for",
    "proto": b"x-forwarded-proto",
    "host": b"x-forwarded-host",
    "port": b"x-forwarded-port",
    "prefix": b"x-forwarded-prefix",
}
#: Every forwarded header ProxyHeaders knows; the ones a configuration does not
#: read are removed when ``strip_ignored`` is on (a client may have sent them).
FAMILY: Final = frozenset({*X_NAMES.values(), b"forwarded", b"x-real-ip"})
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class OriginalRequest(Mapping[str, Any]):
    """The request as the server saw it: ``client``, ``scheme``, ``host``, ``server``
    and ``root_path``, read from the head ProxyHeaders was given when first asked for.

    A read-only mapping (compare it with a dict, or ``dict()`` it). The head reads
    the environ or scope the server passed, which no app sees (apps get a rewritten
    copy), so the values stay the server's.
    """

    __slots__ = ("_head",)
    _KEYS: Final = ("client", "scheme", "host", "server", "root_path")

    def __init__(self, head: RequestHead) -> None:
        self._head = head

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self._head, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return f"OriginalRequest({dict(self)!r})"


class HostAndPrefix(NamedTuple):
    """The forwarded values that combine with the head's own Host and paths."""

    host: tuple[str, int | None] | None
    port: int | None
    prefix: tuple[str, str] | None

    def add_changes(self, head: RequestHead, changes: dict[str, Any]) -> str:
        """Add to ``changes`` what these values make of ``head``; the value that
        could not be applied to this head, if any ("" when none)."""
        self._prefix(head, changes)
        return self._host(head, changes)

    def _host(self, head: RequestHead, changes: dict[str, Any]) -> str:
        parsed, port = self.host, self.port
        if parsed is None:
            if port is None:
                return ""
            parsed = parse_host(head.host or "")  # a port alone keeps the request's host
            if parsed is None:
                return self._port_alone(head, changes, port)
        scheme = changes.get("scheme", head.scheme)
        name, host_port = parsed
        port = port or host_port or _DEFAULT_PORTS.get(scheme, 80)
        header = name if port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
        changes["headers"] = set_header(head.headers, b"host", header.encode("latin-1"))
        changes["server"] = (name.strip("[]"), port)
        return ""

    @staticmethod
    def _port_alone(head: RequestHead, changes: dict[str, Any], port: int) -> str:
        # No usable Host header: the port still applies to the server (SERVER_PORT),
        # as werkzeug's ProxyFix does; a server of unknown address cannot take one.
        server = head.server
        if server is None:
            return f"X-Forwarded-Port {port} (no Host header and no server address)"
        changes["server"] = (server[0], port)
        return ""

    def _prefix(self, head: RequestHead, changes: dict[str, Any]) -> None:
        if self.prefix is None:
            return
        decoded, raw = self.prefix
        changes["root_path"] = decoded + head.root_path
        changes["path"] = decoded + head.path
        changes["raw_path"] = quote_path(raw, keep_escapes=True) + head.raw_path


class Plan(NamedTuple):
    """What one set of forwarded header texts asks for, validated.

    ``changes`` holds what applies to any head (client, scheme); ``with_head``
    what combines with the head's own Host and paths (None when nothing does).
    ``problems`` names each value ignored as invalid ("" when none); ``drop`` the
    header lines removed.
    """

    changes: dict[str, Any]
    with_head: HostAndPrefix | None
    problems: str
    drop: frozenset[bytes]

    def apply(self, head: RequestHead) -> tuple[RequestHead, str]:
        """``head`` rewritten by this plan, without the header lines named in ``drop``
        and with the original kept under :data:`ORIGINAL_KEY`; and the problems
        (the plan's and any value this head could not take, "" when none)."""
        drop = self.drop
        changes = self.changes  # shared by every head: copied before adding to it
        problems = self.problems
        if self.with_head is not None:
            changes = dict(changes)
            problem = self.with_head.add_changes(head, changes)
            problems = f"{problems}; {problem}" if problems and problem else problems or problem
        if drop:
            kept_lines = without_lines(changes.get("headers", head.headers), drop)
            if not changes:
                return head.replace(headers=kept_lines), problems
            changes = {**changes, "headers": kept_lines}
        elif not changes:
            return head, problems
        values = head.values
        original = OriginalRequest(head)
        kept = {**values, ORIGINAL_KEY: original} if values else {ORIGINAL_KEY: original}
        return head.replace(**changes, values=MappingProxyType(kept)), problems


def without_lines(headers: Headers, names: frozenset[bytes]) -> Headers:
    """``headers`` without the lines named in ``names`` (lowercase)."""
    return tuple(line for line in headers if line[0] not in names)


def header_names(mode: str, uses: frozenset[str]) -> tuple[bytes, ...]:
    """The headers a configuration reads, in the order :func:`make_plan` takes their texts."""
    if mode == "forwarded":
        return (b"forwarded",)
    names = {**X_NAMES, "for": b"x-real-ip"} if mode == "x-real-ip" else X_NAMES
    return tuple(names[use] for use in sorted(uses))


def make_plan(
    texts: tuple[bytes | None, ...],
    names: tuple[bytes, ...],
    uses: frozenset[str],
    trusted: Container[str],
    websocket: bool,
    drop: frozenset[bytes] = frozenset(),
) -> Plan:
    """The plan for forwarded header ``texts`` (one per name in ``names``, None if absent),
    removing the lines named in ``drop``.

    ``names`` comes from :func:`header_names`.
    """
    problems: list[str] = []
    decoded = {n: t.decode("latin-1") for n, t in zip(names, texts, strict=True) if t is not None}
    if not decoded:  # only headers this configuration does not read
        values = {}
    elif names == (b"forwarded",):
        values = _forwarded(decoded[b"forwarded"], uses, trusted, problems)
    else:
        values = _x_forwarded(decoded, trusted, problems)
    changes: dict[str, Any] = {}
    if "for" in values:
        changes["client"] = values["for"]
    if "proto" in values:
        scheme = _scheme(values["proto"], websocket, problems)
        if scheme is not None:
            changes["scheme"] = scheme
    host = port = None
    if "host" in values:
        host = parse_host(values["host"])
        if host is None:
            problems.append(f"forwarded host {values['host'][:100]!r}")
    if "port" in values:
        port = parse_port(values["port"])
        if port is None:
            problems.append(f"X-Forwarded-Port {values['port'][:20]!r}")
    prefix = None
    if "prefix" in values:
        prefix = parse_prefix(values["prefix"])
        if prefix is None:
            problems.append(f"X-Forwarded-Prefix {values['prefix'][:100]!r}")
    with_head = HostAndPrefix(host, port, prefix)
    if with_head == (None, None, None):
        return Plan(changes, None, "; ".join(problems), drop)
    return Plan(changes, with_head, "; ".join(problems), drop)


_USE_OF: Final = {name: use for use, name in X_NAMES.items()}
_USE_OF[b"x-real-ip"] = "for"


def _x_forwarded(texts: dict[bytes, str], trusted: Container[str], problems: list[str]) -> Any:
    values: dict[str, Any] = {}
    for name, text in texts.items():
        use = _USE_OF[name]
        if name == b"x-real-ip":  # one address, set by the nearest proxy: no chain to walk
            node = parse_node(_nearest(text))
            if node is None:
                problems.append(f"X-Real-IP {text[:100]!r}")
            else:
                values["for"] = node
            continue
        if use != "for":
            values[use] = _nearest(text)
            continue
        nodes = text.split(",")
        index, node = walk_chain(nodes, trusted)
        if node is None:
            problems.append(f"X-Forwarded-For entry {nodes[index].strip()[:100]!r}")
        else:
            values["for"] = node
    return values


def _nearest(text: str) -> str:
    """The nearest proxy's value of a header: the last one, the one it set."""
    return text.rsplit(",", 1)[-1].strip() if "," in text else text.strip()


def _forwarded(
    text: str, uses: frozenset[str], trusted: Container[str], problems: list[str]
) -> dict[str, Any]:
    elements = parse_forwarded(text)
    if not elements:
        problems.append(f"Forwarded header {text[:100]!r}")
        return {}
    nodes = [element.get("for", "") for element in elements]
    index, node = walk_chain(nodes, trusted)
    if node is None:
        problems.append(f"Forwarded for={nodes[index]!r}")
        return {}
    values: dict[str, Any] = {"for": node} if "for" in uses else {}
    # The element the client's first trusted proxy wrote describes the client side.
    element = elements[index]
    for use in ("proto", "host"):
        if use in uses and use in element:
            values[use] = element[use]
    return values


def _scheme(proto_text: str, websocket: bool, problems: list[str]) -> str | None:
    proto = parse_proto(proto_text)
    if proto is None:
        problems.append(f"X-Forwarded-Proto {proto_text[:40]!r}")
        return None
    secure = proto in ("https", "wss")
    if websocket:
        return "wss" if secure else "ws"
    return "https" if secure else "http"
