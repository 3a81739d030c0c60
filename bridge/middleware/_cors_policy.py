"""Sans-IO CORS rules: a validated policy, preflight answers, actual-response headers.

Invariants:

* Every option is validated at construction; nothing configured can put a CR,
  LF or other control character into a header.
* ``Access-Control-Allow-Origin`` is ``*`` only when every origin is allowed
  and credentials are not; otherwise it names the request's origin.
* An Origin that is not ``scheme://host[:port]`` (or ``null``) is never
  allowed, whatever the patterns say.
* Nothing here logs, reads the clock or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from bridge.middleware._core.heads import Headers, Response
from bridge.middleware._core.validate import header_name
from bridge.middleware._host_rules import split_host

__all__ = ("ALL_METHODS", "CorsPolicy", "is_origin")

ALL_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
#: Request headers a browser never asks about (Fetch's CORS-safelisted names).
SAFELISTED: Final = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
_SAFE: Final = frozenset(name.lower() for name in SAFELISTED)
_PREFLIGHT_VARY: Final = (
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network"
)
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]*")
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_ORIGIN: Final = 2048


def is_origin(text: str) -> bool:
    """True when ``text`` is a serialized origin: ``scheme://host[:port]``, lowercase."""
    if len(text) > _MAX_ORIGIN:
        return False
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme) or rest != rest.lower():
        return False
    parsed = split_host(rest)
    return parsed is not None and not rest.endswith(".") and not rest.endswith(":")


class CorsPolicy:
    """The validated CORS options and the headers they produce."""

    __slots__ = (
        "allow_all_headers",
        "allow_headers",
        "any_origin",
        "credentials",
        "listed_lines",
        "methods",
        "origin_regex",
        "origins",
        "preflight_lines",
        "private_network",
        "simple_lines",
    )

    def __init__(
        self,
        *,
        allow_origins: Iterable[str],
        allow_origin_regex: str | None,
        allow_methods: Iterable[str],
        allow_headers: Iterable[str],
        allow_credentials: bool,
        expose_headers: Iterable[str],
        max_age: int,
        allow_private_network: bool,
    ) -> None:
        origins = _listed(allow_origins, "allow_origins")
        self.any_origin = "*" in origins
        if self.any_origin and allow_credentials:
            raise ValueError(
                "allow_credentials=True with allow_origins=['*'] would let every site read "
                "your users' authenticated responses; list the origins instead"
            )
        self.origins = frozenset(_origin(text) for text in origins if text != "*")
        self.origin_regex = _regex(allow_origin_regex)
        if isinstance(allow_methods, str):  # "GET, POST", as every middleware's methods
            allow_methods = [method.strip() for method in allow_methods.split(",")]
        methods = _listed(allow_methods, "allow_methods")
        self.methods = ALL_METHODS if "*" in methods else tuple(_method(m) for m in methods)
        headers = _listed(allow_headers, "allow_headers")
        self.allow_all_headers = "*" in headers
        named = {
            h: header_name(h, "allow_headers: header name").decode() for h in headers if h != "*"
        }
        shown = dict.fromkeys(SAFELISTED) | {
            h: None for h, low in named.items() if low not in _SAFE
        }
        self.allow_headers = frozenset(named.values()) | _SAFE
        self.credentials = flag(allow_credentials, "allow_credentials")
        self.private_network = flag(allow_private_network, "allow_private_network")
        exposed = _listed(expose_headers, "expose_headers")
        for name in exposed:
            if name != "*":
                header_name(name, "expose_headers: header name")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be a number of seconds >= 0, not {max_age!r}")
        simple: list[tuple[bytes, bytes]] = []
        if self.credentials:
            simple.append((b"access-control-allow-credentials", b"true"))
        if exposed:
            simple.append((b"access-control-expose-headers", ", ".join(exposed).encode("ascii")))
        self.simple_lines: Headers = tuple(simple)
        #: An actual response's lines for each listed origin, made once.
        self.listed_lines = {origin: self._actual_lines(origin) for origin in self.origins}
        preflight = [
            (b"vary", _PREFLIGHT_VARY),
            (b"access-control-allow-methods", ", ".join(self.methods).encode("ascii")),
            (b"access-control-max-age", str(max_age).encode("ascii")),
        ]
        if not self.allow_all_headers:
            listed = ", ".join(sorted(shown)).encode("ascii")  # as configured, like Starlette
            preflight.append((b"access-control-allow-headers", listed))
        if self.credentials:
            preflight.append((b"access-control-allow-credentials", b"true"))
        self.preflight_lines: Headers = tuple(preflight)

    def allows(self, origin: str) -> bool:
        """True when ``origin`` (as the request sent it) may read responses."""
        if origin in self.origins:
            return True  # the listed origins were validated at construction
        if not is_origin(origin) and origin != "null":
            return False
        if self.any_origin:
            return True
        return self.origin_regex is not None and self.origin_regex.fullmatch(origin) is not None

    def allow_origin_value(self, origin: str) -> bytes:
        return b"*" if self.any_origin else origin.encode("ascii")

    def actual_lines(self, origin: str) -> Headers | None:
        """The lines an actual (non-preflight) response gets for ``origin`` as the request
        sent it (``Vary: Origin`` first), or None when the origin is not allowed."""
        lines = self.listed_lines.get(origin)
        if lines is None and self.allows(origin):
            lines = self._actual_lines(origin)
        return lines

    def _actual_lines(self, origin: str) -> Headers:
        allow = (b"access-control-allow-origin", self.allow_origin_value(origin))
        return ((b"vary", b"Origin"), allow, *self.simple_lines)

    def preflight(
        self, origin: str, method: bytes, requested: bytes | None, private: bool
    ) -> tuple[Response, list[str]]:
        """The answer to a preflight, and what was refused (empty when allowed)."""
        lines = list(self.preflight_lines)
        refused: list[str] = []
        if self.allows(origin):
            lines.append((b"access-control-allow-origin", self.allow_origin_value(origin)))
        else:
            refused.append("origin")
        if method.decode("latin-1") not in self.methods:
            refused.append("method")
        names = _requested_headers(requested)
        if names is None or not (self.allow_all_headers or self.allow_headers.issuperset(names)):
            refused.append("headers")
        elif self.allow_all_headers and names:
            lines.append((b"access-control-allow-headers", ", ".join(names).encode("ascii")))
        if private:
            if self.private_network:
                lines.append((b"access-control-allow-private-network", b"true"))
            else:
                refused.append("private-network")
        if refused:
            message = "Disallowed CORS " + ", ".join(refused)
            return Response.text(400, message, tuple(lines)), refused
        return Response.text(200, "OK", tuple(lines)), refused


def _requested_headers(value: bytes | None) -> list[str] | None:
    """Access-Control-Request-Headers as lowercase names; None when one is not a token."""
    if value is None:
        return []
    names = []
    for item in value.split(b","):
        item = item.strip(b" \t")
        if not item:
            continue
        if not _TOKEN.fullmatch(item):
            return None
        names.append(item.decode("ascii").lower())
    return names


def _listed(values: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(values, str):
        values = (values,)
    out = []
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"{what}: each item must be a str, not {value!r}")
        out.append(value)  # never stripped: a CR or LF in a value is refused, not hidden
    return out


def _origin(text: str) -> str:
    lowered = text.lower()
    if lowered == "null":
        return lowered
    if not is_origin(lowered):
        hint = " (remove the trailing '/')" if lowered.endswith("/") else ""
        raise ValueError(
            f"allow_origins: {text!r} is not an origin like 'https://example.com' or "
            f"'http://localhost:8000'{hint}; use allow_origin_regex for patterns"
        )
    return lowered


def _regex(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"allow_origin_regex must be a str, not {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"allow_origin_regex {pattern!r} is not a valid regex: {exc}") from None


def _method(method: str) -> str:
    header_name(method, "allow_methods: method")  # a method is a token too
    return method.upper() if method.upper() in ALL_METHODS else method


def flag(value: bool, what: str) -> bool:
    """``value`` when it is a bool; a TypeError naming the option otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, not {value!r}")
    return value
