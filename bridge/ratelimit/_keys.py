"""Key functions: which bucket a request is counted in (sans-IO).

A key function takes the request head and returns a string, or ``None`` when
the request has no key (then it is not limited, and the middleware logs that
once). The default, :func:`client_address`, reads the peer address from the
request head, which is the address ProxyHeaders resolved from the trusted
proxies -- never a raw ``X-Forwarded-For`` or ``Forwarded`` value, which any
client can write.

Keys are used in store keys and log lines, so :func:`safe_key` caps them:
anything long, non-printable or containing Redis hash-tag braces is replaced
by a digest. A client can therefore neither blow up memory with one huge key
nor inject bytes into a log line or a Redis key.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from typing import Final, Protocol, TypeAlias

from bridge.middleware import RequestHead

__all__ = (
    "HeadLike",
    "KeyFunc",
    "client_address",
    "header_key",
    "method_key",
    "path_key",
    "safe_key",
)

MAX_KEY_LENGTH: Final = 128


class HeadLike(Protocol):
    """The parts of the middleware core's ``RequestHead`` a key function may read."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]: ...
    @property
    def client(self) -> tuple[str, int] | None: ...


#: A key function: the public ``bridge.middleware.RequestHead`` in, a key (or None:
#: not limited) out. The built-in ones take any :class:`HeadLike`, which accepts it.
KeyFunc: TypeAlias = Callable[[RequestHead], "str | None"]


def safe_key(key: str) -> str:
    """``key`` itself when short and printable ASCII without braces, else a digest of it."""
    if (
        len(key) <= MAX_KEY_LENGTH
        and key.isascii()
        and key.isprintable()
        and "{" not in key
        and "}" not in key
    ):
        return key
    raw = key.encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:40]


def _ipv6_network(address: str, prefix: int) -> str:
    try:
        ip = ipaddress.IPv6Address(address.strip("[]"))
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, prefix), strict=False))


def client_address_key(ipv6_prefix: int = 64) -> Callable[[HeadLike], str | None]:
    """A key function over the client address, grouping IPv6 clients by ``ipv6_prefix``.

    One host usually owns a whole IPv6 /64, so counting single IPv6 addresses
    would let it rotate through 2**64 keys. ``ipv6_prefix=128`` counts single
    addresses. Returns ``None`` when the server gave no client address (a unix
    socket without ProxyHeaders).
    """
    if not 0 < ipv6_prefix <= 128:
        raise ValueError(f"ipv6_prefix must be between 1 and 128, not {ipv6_prefix!r}")

    def key(head: HeadLike) -> str | None:
        """The client address from the request head (ProxyHeaders' when it ran), or None."""
        client = head.client
        if client is None or not client[0]:
            return None
        address = client[0]
        return _ipv6_network(address, ipv6_prefix) if ":" in address else address

    key.keys_by_address = True  # type: ignore[attr-defined]  # its None means "no address"
    return key


#: The default key: the client address (IPv6 grouped by /64).
client_address: Final = client_address_key()


def header_key(
    name: str, *, fallback: KeyFunc | None = client_address, digest: bool = True
) -> KeyFunc:
    """A key function over request header ``name`` (e.g. an API key), first value.

    Requests without the header are keyed by ``fallback`` (default: the client
    address, so they share no bucket with anyone else); ``fallback=None``
    leaves them unlimited. With ``digest=True`` (default) the value is stored
    as a SHA-256 digest, so secrets such as API keys never appear in clear in
    Redis keys or logs; ``digest=False`` keeps short, printable values readable.
    """
    wanted = name.strip().lower().encode("latin-1")
    if not wanted or b":" in wanted:
        raise ValueError(f"not a header name: {name!r}")
    tag = name.strip().lower()

    def key(head: RequestHead) -> str | None:
        """The header's first value (or its digest), else the fallback key."""
        for header, value in head.headers:
            if header == wanted:
                if digest:
                    return f"{tag}#" + hashlib.sha256(value).hexdigest()[:32]
                return f"{tag}={value.decode('latin-1')}"
        return None if fallback is None else fallback(head)

    key.keys_by_address = getattr(fallback, "keys_by_address", False)  # type: ignore[attr-defined]
    return key


def path_key(head: HeadLike) -> str:
    """Key by request path: one bucket per path, shared by every client."""
    return head.path


def method_key(head: HeadLike) -> str:
    """Key by request method: one bucket per method, shared by every client."""
    return head.method
