"""Sans-IO host rules: parse a Host header, match it against allowed-host patterns,
and build the absolute URL of a redirect.

Invariants:

* :func:`split_host` follows Django's ``split_domain_port`` exactly (the same
  regular expression, lowercased, one trailing dot dropped), so a host is
  well formed here exactly when Django would accept its syntax. Anything else
  (non-ASCII, spaces, two hosts joined with a comma, an empty value) is None.
* A pattern without a port matches the host on any port; a pattern with a port
  matches only a Host header that names that port.
* Nothing here logs, reads the clock or does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote_from_bytes

from bridge.middleware._core.heads import Response

__all__ = ("HostPatterns", "absolute_url", "quoted_for_log", "redirect", "split_host")

# django.http.request.host_validation_re
_HOST: Final = re.compile(r"([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::([0-9]+))?")
_NAME: Final = re.compile(r"[a-z0-9.-]+")
# Bytes a URL path or query may carry as they are; anything else is percent-encoded.
# "%" is kept, so escapes the client sent stay exactly as sent.
_PATH_SAFE: Final = "/%;=,:@!$&'()*+~-._"
_QUERY_SAFE: Final = _PATH_SAFE + "?"


def split_host(value: str) -> tuple[str, str] | None:
    """``(domain, port)`` of a Host header (lowercase; port ``""`` when absent), or None
    when it is malformed. ``value`` is the header as latin-1 text."""
    match = _HOST.fullmatch(value.lower())
    if match is None:
        return None
    domain, port = match.group(1), match.group(2) or ""
    domain = domain.removesuffix(".")
    return (domain, port) if domain else None


class HostPatterns:
    """Allowed-host patterns, validated and sorted by kind at construction.

    * ``"*"``: any well-formed host.
    * ``"example.com"``: that name exactly; ``"[::1]"`` or ``"::1"``: that IPv6 literal.
    * ``"*.example.com"``: any subdomain of example.com, not example.com itself (Starlette).
    * ``".example.com"``: example.com and any subdomain (Django).
    * any of these with ``":port"``: only on that port.
    """

    __slots__ = ("any", "exact", "suffixes")

    def __init__(self, patterns: Iterable[str] | str, what: str = "allowed_hosts") -> None:
        if isinstance(patterns, str):
            patterns = (patterns,)
        self.any = False
        #: exact name -> allowed ports ("" in the set: any port)
        self.exact: dict[str, frozenset[str]] = {}
        #: (".example.com", port or "", also the apex "example.com")
        self.suffixes: list[tuple[str, str, bool]] = []
        count = 0
        for pattern in patterns:
            count += 1
            self._add(pattern, what)
        if not count:
            raise ValueError(f"{what} is empty: list the host names the app serves, or '*'")

    def _add(self, pattern: object, what: str) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"{what}: each pattern must be a str, not {pattern!r}")
        text = pattern.strip().lower()
        if text == "*":
            self.any = True
            return
        name, port = _pattern_parts(text, pattern, what)
        if name.startswith("*."):
            self.suffixes.append((name[1:], port, False))
        elif name.startswith("."):
            self.suffixes.append((name, port, True))
        else:
            self.exact[name] = self.exact.get(name, frozenset()) | {port}

    def names(self, domain: str, port: str) -> bool:
        """True when an exact pattern (not a wildcard) matches ``domain`` and ``port``."""
        ports = self.exact.get(domain)
        return ports is not None and ("" in ports or (bool(port) and port in ports))

    def allows(self, domain: str, port: str) -> bool:
        """True when ``domain`` (and ``port``, ``""`` when absent) matches a pattern."""
        if self.any:
            return True
        if self.names(domain, port):
            return True
        for suffix, only_port, apex in self.suffixes:
            if only_port and port != only_port:
                continue
            if domain.endswith(suffix) or (apex and domain == suffix[1:]):
                return True
        return False


def _pattern_parts(text: str, pattern: str, what: str) -> tuple[str, str]:
    """``(name, port)`` of a lowercased pattern; raises ValueError saying what to fix."""
    if "*" in text.lstrip("*") or (text.startswith("*") and not text.startswith("*.")):
        raise ValueError(
            f"{what}: {pattern!r}: a wildcard must be a whole first label, like '*.example.com'"
        )
    try:  # a bare IPv6 literal ("::1"): bracket it, as a Host header carries it
        ipaddress.IPv6Address(text)
    except ValueError:
        pass
    else:
        return f"[{text}]", ""
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{what}: {pattern!r} is not a valid host name") from None
    match = _HOST.fullmatch(text.removeprefix("*"))
    if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) <= 65535):
        raise ValueError(
            f"{what}: {pattern!r} is not a host pattern; use 'example.com', '*.example.com', "
            "'.example.com', '[::1]' or any of them with ':port'"
        )
    name, port = match.group(1).removesuffix("."), match.group(2) or ""
    if name.startswith("["):
        _require_ipv6(name, pattern, what)
    elif not _NAME.fullmatch(name.lstrip(".")):
        raise ValueError(f"{what}: {pattern!r} is not a host pattern")
    prefix = "*" if text.startswith("*") else ""
    return prefix + name, port


def _require_ipv6(name: str, pattern: str, what: str) -> None:
    try:
        ipaddress.IPv6Address(name[1:-1])
    except ValueError:
        raise ValueError(f"{what}: {pattern!r} is not a valid IPv6 literal") from None


def absolute_url(scheme: str, host: str, raw_path: bytes, query: bytes) -> bytes:
    """``scheme://host/path?query`` as ASCII bytes for a Location header.

    ``raw_path`` and ``query`` are the request's bytes as sent: escapes stay as
    they are, and only bytes a URL cannot carry (controls, spaces, non-ASCII)
    are percent-encoded, so the header never carries a CR or LF.
    """
    path = quote_from_bytes(raw_path, safe=_PATH_SAFE) if raw_path.startswith(b"/") else "/"
    url = f"{scheme}://{host}{path}"
    if query:
        url += "?" + quote_from_bytes(query, safe=_QUERY_SAFE)
    return url.encode("ascii")


def redirect(status: int, location: bytes) -> Response:
    """A redirect with an empty body (typed, so strict WSGI validators accept it)."""
    return Response(
        status,
        (
            (b"location", location),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"0"),
        ),
    )


def quoted_for_log(text: str, limit: int = 100) -> str:
    """``text`` (which came from the client) quoted for a log line, cut to ``limit``."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
