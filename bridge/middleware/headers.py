"""CustomHeaders: set, append or remove request and response headers by configuration."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Final

from bridge._http.headers import HOP_BY_HOP
from bridge._http.options import UNSET, renamed_option, warn_deprecated
from bridge._http.paths import (
    Exempt,
    PathSpec,
    app_path,
    exempt_matcher,
    matches_any,
    path_patterns,
)
from bridge.middleware._core.base import Interface, Middleware, spellings
from bridge.middleware._core.exchange import Exchange, Forward
from bridge.middleware._core.heads import Headers as HeaderLines
from bridge.middleware._core.heads import RequestHead, ResponseHead
from bridge.middleware._core.validate import header_name, header_pairs

__all__ = ("CustomHeaders",)

HeaderSpec = Mapping[str, str] | Iterable[tuple[str, str]] | None

# Framing and hop-by-hop headers belong to the server: changing them desynchronises the body.
_FRAMING: Final = HOP_BY_HOP | {b"content-length"}


class CustomHeaders(Middleware):
    """Edit request headers before the app and response headers after it.

    .. versionchanged:: 0.2
       Renamed from ``Headers`` (a name Starlette's and werkzeug's users know as
       a header collection); ``Headers`` still works with a ``DeprecationWarning``.

    Options (mappings of name to value, or lists of ``(name, value)`` pairs;
    names are case-insensitive and validated as tokens, values must not
    contain CR, LF, NUL or other control characters):

    * ``set_request`` / ``append_request`` / ``remove_request`` (names):
      request headers the app sees.
    * ``set_response`` (replace the app's value), ``default_response`` (set
      only if the app did not), ``append_response`` (one more line) and
      ``remove_response`` (names, e.g. ``["server"]``).
    * ``paths``: path patterns the rules apply to (default all): ``"/static"``
      covers ``/static/app.css``, relative to the mount point; ``"=/"`` is
      that path only.
    * ``exempt``: requests the rules never apply to: path patterns or a
      function of the request head returning True.
      See docs/middleware/configuring.md.

    Removals run first, then sets, then appends. Framing and hop-by-hop
    headers (Content-Length, Transfer-Encoding, Connection, Keep-Alive, TE,
    Trailer, Upgrade, Proxy-*) cannot be configured.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``exempt`` replaces ``exclude_paths`` (deprecated, removed in the next release).
    """

    def __init__(
        self,
        app: Any,
        *,
        set_request: HeaderSpec = None,
        append_request: HeaderSpec = None,
        remove_request: Iterable[str] = (),
        set_response: HeaderSpec = None,
        default_response: HeaderSpec = None,
        append_response: HeaderSpec = None,
        remove_response: Iterable[str] = (),
        paths: PathSpec | Iterable[PathSpec] | None = None,
        exempt: Exempt = None,
        exclude_paths: Any = UNSET,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.set_request = _checked(header_pairs(set_request, "set_request"), "set_request")
        self.append_request = _checked(
            header_pairs(append_request, "append_request"), "append_request"
        )
        self.remove_request = _names(remove_request, "remove_request")
        self.set_response = _checked(header_pairs(set_response, "set_response"), "set_response")
        self.default_response = _checked(
            header_pairs(default_response, "default_response"), "default_response"
        )
        self.append_response = _checked(
            header_pairs(append_response, "append_response"), "append_response"
        )
        self.remove_response = _names(remove_response, "remove_response")
        self.edits_request = bool(self.set_request or self.append_request or self.remove_request)
        self.edits_response = bool(
            self.set_response
            or self.default_response
            or self.append_response
            or self.remove_response
        )
        if not (self.edits_request or self.edits_response):
            raise ValueError(
                "CustomHeaders: configure at least one of the set/append/remove options"
            )
        self.header_spellings = spellings(  # as the user wrote them, under WSGI
            chain.from_iterable(
                _names_given(spec) for spec in (set_response, default_response, append_response)
            )
        )
        self.drop_request = self.remove_request | {name for name, _ in self.set_request}
        self.drop_response = self.remove_response | {name for name, _ in self.set_response}
        self._exchange: Callable[[RequestHead, float, CustomHeaders], Exchange] = (
            _BothEdits
            if self.edits_request and self.edits_response
            else _RequestEdits
            if self.edits_request
            else _HeadersExchange
        )
        self.paths = None if paths is None else path_patterns(paths, "CustomHeaders: paths")
        exempt = renamed_option("CustomHeaders", "exclude_paths", exclude_paths, "exempt", exempt)
        self.exempt = exempt_matcher(exempt, "CustomHeaders: exempt")

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        paths = self.paths
        if paths is not None and not matches_any(paths, app_path(head.path, head.root_path)):
            return None
        if self.exempt is not None and self.exempt(head):
            return None
        return self._exchange(head, now, self)


def _names_given(spec: HeaderSpec) -> Iterator[str]:
    """The names of a validated spec as the user wrote them (bytes as latin-1 text)."""
    if spec is None:
        return
    for name, _value in spec.items() if isinstance(spec, Mapping) else spec:
        yield name.decode("latin-1") if isinstance(name, bytes) else name


def _names(names: Iterable[str], what: str) -> frozenset[bytes]:
    if isinstance(names, str | bytes):
        names = (names,)
    found = frozenset(header_name(name, f"{what}: header name") for name in names)
    return _checked_names(found, what)


def _checked_names(names: frozenset[bytes], what: str) -> frozenset[bytes]:
    framing = names & _FRAMING
    if framing:
        listed = ", ".join(sorted(n.decode() for n in framing))
        raise ValueError(f"{what}: {listed} are framing headers the server owns; leave them out")
    return names


def _checked(pairs: HeaderLines, what: str) -> HeaderLines:
    _checked_names(frozenset(name for name, _ in pairs), what)
    return pairs


def _edit(
    headers: HeaderLines,
    drop: frozenset[bytes],
    replace: HeaderLines,
    default: HeaderLines,
    append: HeaderLines,
) -> HeaderLines:
    """Remove ``drop`` names, then add ``replace``, absent ``default`` and ``append`` lines."""
    present = {name.lower() for name, _ in headers}
    if drop and not present.isdisjoint(drop):
        headers = tuple(pair for pair in headers if pair[0].lower() not in drop)
        present -= drop
    if default:
        present.update(name for name, _ in replace)
        default = tuple(pair for pair in default if pair[0] not in present)
    return headers + replace + default + append


class _HeadersExchange(Exchange):
    """Edits the response head only (no request() call at all)."""

    __slots__ = ("mw",)
    response_on_failure = True

    def __init__(self, head: RequestHead, now: float, mw: CustomHeaders) -> None:
        self.head = head
        self.now = now
        self.mw = mw

    def response(self, head: ResponseHead) -> ResponseHead:
        mw = self.mw
        headers = _edit(
            head.headers, mw.drop_response, mw.set_response, mw.default_response, mw.append_response
        )
        return ResponseHead(head.status, headers)


class _RequestEdits(Exchange):
    """Edits the request head only: request-only, so nothing on the response path."""

    __slots__ = ("mw",)

    def __init__(self, head: RequestHead, now: float, mw: CustomHeaders) -> None:
        self.head = head
        self.now = now
        self.mw = mw

    def request(self) -> Forward:
        mw = self.mw
        headers = _edit(self.head.headers, mw.drop_request, mw.set_request, (), mw.append_request)
        return Forward(self.head.replace(headers=headers))


class _BothEdits(_RequestEdits):
    __slots__ = ()

    response = _HeadersExchange.response


def __getattr__(name: str) -> Any:
    if name == "Headers":  # the name until 0.2, easily confused with header-line types
        warn_deprecated("bridge.middleware.headers.Headers is renamed CustomHeaders")
        return CustomHeaders
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
