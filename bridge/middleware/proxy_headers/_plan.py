"""Sans-IO core of ProxyHeaders: what a trusted proxy's headers say, and the head they give.

A :class:`Plan` is a pure function of the forwarded header texts, the mode,
the values in use, the trusted peers and whether the request is a websocket;
``ProxyHeaders`` caches plans by those texts, so a client whose proxy sends
the same headers again costs a dict lookup. Applying a plan to a head is the
only per-request step, and it reads the head only for what the plan changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import quote

from bridge.middleware._core.heads import RequestHead, set_header
from bridge.middleware.proxy_headers._forwarded import (
    TrustedPeers,
    parse_forwarded,
    parse_host,
    parse_port,
    parse_prefix,
    parse_proto,
    walk_chain,
)

__all__ = ("ORIGINAL_KEY", "X_NAMES", "OriginalRequest", "Plan", "make_plan")

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

    def add_changes(self, head: RequestHead, changes: dict[str, Any]) -> None:
        """Add to ``changes`` what these values make of ``head``."""
        self._host(head, changes)
        self._prefix(head, changes)

    def _host(self, head: RequestHead, changes: dict[str, Any]) -> None:
        parsed, port = self.host, self.port
        if parsed is None:
            if port is None:
                return
            parsed = parse_host(head.host or "")  # a port alone keeps the request's host
            if parsed is None:
                return
        scheme = changes.get("scheme", head.scheme)
        name, host_port = parsed
        port = port or host_port or _DEFAULT_PORTS.get(scheme, 80)
        header = name if port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
        changes["headers"] = set_header(head.headers, b"host", header.encode("latin-1"))
        changes["server"] = (name.strip("[]"), port)

    def _prefix(self, head: RequestHead, changes: dict[str, Any]) -> None:
        if self.prefix is None:
            return
        decoded, raw = self.prefix
        changes["root_path"] = decoded + head.root_path
        changes["path"] = decoded + head.path
        changes["raw_path"] = quote(raw, safe="/%;=,:@!$&'()*+~").encode("ascii") + head.raw_path


class Plan(NamedTuple):
    """What one set of forwarded header texts asks for, validated.

    ``changes`` holds what applies to any head (client, scheme); ``with_head``
    what combines with the head's own Host and paths (None when nothing does).
    ``problems`` names each value ignored as invalid ("" when none).
    """

    changes: dict[str, Any]
    with_head: HostAndPrefix | None
    problems: str

    def apply(self, head: RequestHead) -> RequestHead:
        """``head`` rewritten by this plan, the original kept under :data:`ORIGINAL_KEY`."""
        changes = self.changes
        if self.with_head is not None:
            changes = dict(changes)
            self.with_head.add_changes(head, changes)
        if not changes:
            return head
        values = head.values
        original = OriginalRequest(head)
        kept = {**values, ORIGINAL_KEY: original} if values else {ORIGINAL_KEY: original}
        return head.replace(**changes, values=MappingProxyType(kept))


def make_plan(
    texts: tuple[bytes | None, ...],
    names: tuple[bytes, ...],
    uses: frozenset[str],
    trusted: TrustedPeers,
    websocket: bool,
) -> Plan:
    """The plan for forwarded header ``texts`` (one per name in ``names``, None if absent).

    ``names`` is ``(b"forwarded",)`` in RFC 7239 mode, else X-Forwarded-* names.
    """
    problems: list[str] = []
    decoded = {n: t.decode("latin-1") for n, t in zip(names, texts, strict=True) if t is not None}
    if names == (b"forwarded",):
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
        return Plan(changes, None, "; ".join(problems))
    return Plan(changes, with_head, "; ".join(problems))


_USE_OF: Final = {name: use for use, name in X_NAMES.items()}


def _x_forwarded(texts: dict[bytes, str], trusted: TrustedPeers, problems: list[str]) -> Any:
    values: dict[str, Any] = {}
    for name, text in texts.items():
        use = _USE_OF[name]
        if use != "for":
            # The nearest proxy's value (the last one) is the one it set.
            values[use] = text.rsplit(",", 1)[-1].strip() if "," in text else text.strip()
            continue
        nodes = text.split(",")
        index, node = walk_chain(nodes, trusted)
        if node is None:
            problems.append(f"X-Forwarded-For entry {nodes[index].strip()[:100]!r}")
        else:
            values["for"] = node
    return values


def _forwarded(
    text: str, uses: frozenset[str], trusted: TrustedPeers, problems: list[str]
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
