"""SecurityHeaders: browser security headers, the same under WSGI and ASGI."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias

from bridge._http.options import UNSET, renamed_option
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware._core.base import Interface, Middleware, spellings
from bridge.middleware._core.exchange import Exchange, Forward
from bridge.middleware._core.heads import Headers, RequestHead, ResponseHead
from bridge.middleware._core.validate import header_value

__all__ = ("NONCE_KEY", "PRESETS", "SecurityHeaders", "SecurityPreset")

#: The names of :data:`PRESETS`.
SecurityPreset: TypeAlias = Literal["basic", "strict", "none"]

#: ``values`` key (environ / scope key) holding this request's CSP nonce.
NONCE_KEY: Final = "bridge.csp_nonce"
_NONCE: Final = "{nonce}"

#: Option name -> header name.
OPTIONS: Final = {
    "hsts": "strict-transport-security",
    "csp": "content-security-policy",
    "csp_report_only": "content-security-policy-report-only",
    "content_type_options": "x-content-type-options",
    "frame_options": "x-frame-options",
    "referrer_policy": "referrer-policy",
    "permissions_policy": "permissions-policy",
    "coop": "cross-origin-opener-policy",
    "coep": "cross-origin-embedder-policy",
    "corp": "cross-origin-resource-policy",
}

#: The names as a WSGI server gets them (the usual spelling: Strict-Transport-Security).
_SPELLINGS: Final = spellings(name.title() for name in OPTIONS.values())

_BASIC: Final = {
    "hsts": "max-age=31536000; includeSubDomains",
    "content_type_options": "nosniff",
    "frame_options": "SAMEORIGIN",
    "referrer_policy": "strict-origin-when-cross-origin",
    "coop": "same-origin",
}
PRESETS: Final[Mapping[str, Mapping[str, str]]] = {
    "basic": _BASIC,
    "strict": {
        **_BASIC,
        "hsts": "max-age=63072000; includeSubDomains; preload",
        "frame_options": "DENY",
        "referrer_policy": "no-referrer",
        "csp": (
            "default-src 'self'; script-src 'self' 'nonce-{nonce}'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "permissions_policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "coep": "require-corp",
        "corp": "same-origin",
    },
    "none": {},
}

_UNSET: Final[Any] = object()
_HSTS: Final = re.compile(r"max-age=\d+(\s*;\s*(includeSubDomains|preload))*", re.IGNORECASE)


class SecurityHeaders(Middleware):
    """Add browser security headers to every response.

    Options (each header option: a value string, ``None`` to not send the
    header, or left out to take the preset's value):

    * ``preset``: ``"basic"`` (default), ``"strict"`` or ``"none"``; see
      :data:`PRESETS`.
    * ``hsts`` (Strict-Transport-Security; sent only when the request is
      HTTPS as resolved after ProxyHeaders, never over plain HTTP), ``csp``
      (Content-Security-Policy), ``csp_report_only``,
      ``content_type_options``, ``frame_options``, ``referrer_policy``,
      ``permissions_policy``, ``coop``, ``coep``, ``corp``
      (Cross-Origin-Opener/Embedder/Resource-Policy).
    * A ``{nonce}`` in ``csp`` / ``csp_report_only`` is replaced by a fresh
      nonce per request, which the app reads as ``environ["bridge.csp_nonce"]``
      (WSGI) or ``scope["bridge.csp_nonce"]`` (ASGI).
    * ``override``: False (default) sets each header only if the app did
      not; True replaces the app's value; or an iterable of option or header
      names that override.
    * ``exempt``: requests that get no headers: path patterns (``"/healthz"``
      covers ``/healthz/live``, relative to the mount point; ``"=/healthz"``
      is that path only) or a function of the request head returning True.
      See docs/middleware/configuring.md.
    * ``nonce_factory``: makes nonces (default ``secrets.token_urlsafe(16)``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``exempt`` replaces ``exempt_paths`` (deprecated, removed in the next release).
    """

    def __init__(
        self,
        app: Any,
        *,
        preset: SecurityPreset = "basic",
        hsts: str | None = _UNSET,
        csp: str | None = _UNSET,
        csp_report_only: str | None = _UNSET,
        content_type_options: str | None = _UNSET,
        frame_options: str | None = _UNSET,
        referrer_policy: str | None = _UNSET,
        permissions_policy: str | None = _UNSET,
        coop: str | None = _UNSET,
        coep: str | None = _UNSET,
        corp: str | None = _UNSET,
        override: bool | Iterable[str] = False,
        exempt: Exempt = None,
        exempt_paths: Any = UNSET,
        nonce_factory: Callable[[], str] | None = None,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, not {preset!r}")
        given = {
            "hsts": hsts,
            "csp": csp,
            "csp_report_only": csp_report_only,
            "content_type_options": content_type_options,
            "frame_options": frame_options,
            "referrer_policy": referrer_policy,
            "permissions_policy": permissions_policy,
            "coop": coop,
            "coep": coep,
            "corp": corp,
        }
        chosen: dict[str, Any] = {
            k: (PRESETS[preset].get(k) if v is _UNSET else v) for k, v in given.items()
        }
        overrides = _overrides(override)
        self._lines: list[tuple[bytes, bytes, bool, bool]] = []  # name, value, override, nonce
        self._hsts: tuple[bytes, bytes, bool, bool] | None = None
        for option, value in chosen.items():
            if value is None or value is False:
                continue
            line = _line(option, value, OPTIONS[option] in overrides or option in overrides)
            if option == "hsts":
                self._hsts = line
            else:
                self._lines.append(line)
        self.uses_nonce = any(line[3] for line in self._lines)
        self._names = frozenset(line[0] for line in self._lines) | (
            {self._hsts[0]} if self._hsts is not None else set()
        )
        self._plain = tuple((line[0], line[1]) for line in self._lines)
        https = [self._hsts, *self._lines] if self._hsts is not None else self._lines
        self._plain_https = tuple((line[0], line[1]) for line in https)
        self._exchange = _NonceExchange if self.uses_nonce else _SecurityExchange
        self.header_spellings = _SPELLINGS
        exempt = renamed_option("SecurityHeaders", "exempt_paths", exempt_paths, "exempt", exempt)
        self.exempt = exempt_matcher(exempt, "SecurityHeaders: exempt")
        if nonce_factory is not None and not callable(nonce_factory):
            raise TypeError("nonce_factory must be a function returning a str")
        self.nonce_factory = nonce_factory or _token

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        if self.exempt is not None and self.exempt(head):
            return None
        return self._exchange(head, now, self)


def _token() -> str:
    return secrets.token_urlsafe(16)


def _overrides(override: bool | Iterable[str]) -> frozenset[str]:
    if override is True:
        return frozenset(OPTIONS) | frozenset(OPTIONS.values())
    if override is False:
        return frozenset()
    if isinstance(override, str):
        override = (override,)
    names = frozenset(name.lower() for name in override)
    unknown = names - frozenset(OPTIONS) - frozenset(OPTIONS.values())
    if unknown:
        raise ValueError(f"override: unknown names {sorted(unknown)}; use {sorted(OPTIONS)}")
    return names


def _line(option: str, value: Any, override: bool) -> tuple[bytes, bytes, bool, bool]:
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a str or None, not {type(value).__name__}")
    encoded = header_value(value, option)
    if not encoded:
        raise ValueError(f"{option} is empty; pass None to not send {OPTIONS[option]}")
    if option == "hsts" and not _HSTS.fullmatch(value.strip()):
        raise ValueError(
            f"hsts must look like 'max-age=31536000; includeSubDomains', not {value!r}"
        )
    nonce = _NONCE in value
    if nonce and not option.startswith("csp"):
        raise ValueError(f"{{nonce}} is only allowed in csp and csp_report_only, not in {option}")
    return OPTIONS[option].encode("ascii"), encoded, override, nonce


class _SecurityExchange(Exchange):
    """Without a nonce: nothing to decide, only the response head to edit."""

    __slots__ = ("mw",)
    nonce: bytes | None = None
    response_on_failure = True

    def __init__(self, head: RequestHead, now: float, mw: SecurityHeaders) -> None:
        self.head = head
        self.now = now
        self.mw = mw

    def response(self, head: ResponseHead) -> ResponseHead:
        mw = self.mw
        secure = mw._hsts is not None and self.head.scheme in ("https", "wss")
        headers = head.headers
        present = {name.lower() for name, _ in headers}
        if self.nonce is None and present.isdisjoint(mw._names):
            # Fast path: the app set none of our headers.
            return ResponseHead(head.status, headers + (mw._plain_https if secure else mw._plain))
        lines = [mw._hsts, *mw._lines] if secure and mw._hsts is not None else mw._lines
        return ResponseHead(head.status, _merge(headers, present, lines, self.nonce))


class _NonceExchange(_SecurityExchange):
    """With a CSP nonce: make one per request and show it to the app."""

    __slots__ = ("nonce",)

    def request(self) -> Forward:
        nonce = self.mw.nonce_factory()
        self.nonce = nonce.encode("ascii")
        return Forward(self.head.with_value(NONCE_KEY, nonce))


def _merge(
    headers: Headers,
    present: set[bytes],
    lines: list[tuple[bytes, bytes, bool, bool]],
    nonce: bytes | None,
) -> Headers:
    out = list(headers)
    for name, value, override, has_nonce in lines:
        if name in present:
            if not override:
                continue
            out = [pair for pair in out if pair[0].lower() != name]
        if has_nonce and nonce is not None:
            value = value.replace(b"{nonce}", nonce)
        out.append((name, value))
    return tuple(out)
