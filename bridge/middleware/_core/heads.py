"""Immutable request and response heads, and the respond-now ``Response``.

Invariants:

* Request header names are lowercase bytes, in the order the client sent them;
  the same request gives an equal :class:`RequestHead` under WSGI and ASGI
  (both are built with the rules in ``bridge._http.translate``).
* ``RequestHead.path`` is the decoded full path *including* ``root_path``
  (the ASGI convention); ``raw_path`` is the request target as sent.
* Response header names keep the case the app used; every helper compares
  names case-insensitively and keeps repeated headers (Set-Cookie) as a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from bridge._http.errors import ErrorFormat, error_body
from bridge._http.status import reason_phrase

__all__ = (
    "Headers",
    "RequestHead",
    "Response",
    "ResponseHead",
    "append_header",
    "header_value",
    "header_values",
    "remove_header",
    "set_header",
)

Headers = tuple[tuple[bytes, bytes], ...]

NO_VALUES: Final[Mapping[str, Any]] = MappingProxyType({})


# -- header-list helpers (pure, case-insensitive) ----------------------------


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (any case), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name`` (any case), in order."""
    name = name.lower()
    return [value for key, value in headers if key.lower() == name]


def remove_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> Headers:
    """``headers`` without any line named ``name`` (any case)."""
    name = name.lower()
    return tuple(pair for pair in headers if pair[0].lower() != name)


def set_header(headers: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes) -> Headers:
    """``headers`` with every ``name`` line replaced by one ``name: value`` line.

    The new line takes the place of the first old one, or goes last.
    """
    lowered = name.lower()
    out: list[tuple[bytes, bytes]] = []
    placed = False
    for pair in headers:
        if pair[0].lower() != lowered:
            out.append(pair)
        elif not placed:
            out.append((name, value))
            placed = True
    if not placed:
        out.append((name, value))
    return tuple(out)


def append_header(headers: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes) -> Headers:
    """``headers`` with one more ``name: value`` line at the end."""
    return (*headers, (name, value))


# -- request head ------------------------------------------------------------


_REQUEST_FIELDS: Final = (
    "method",
    "scheme",
    "path",
    "root_path",
    "raw_path",
    "query_string",
    "headers",
    "client",
    "server",
    "http_version",
    "values",
)
_FIELD_NAMES: Final = frozenset(_REQUEST_FIELDS)
#: The fields that come from the ASGI scope (``values`` is middleware's own).
SCOPE_FIELDS: Final = _FIELD_NAMES - {"values"}
_SLOTS: Final = (
    *_REQUEST_FIELDS[:6],
    "_headers",
    *_REQUEST_FIELDS[7:],
    # Used only by the drivers' heads, read on demand (see ``_sourced``): the environ
    # or scope, and the fields a ``replace`` changed since the head was read.
    "_src",
    "_changes",
)
_set = object.__setattr__


class _HeadSlots:
    """The storage of a :class:`RequestHead`: filled while it is this plain class,
    then frozen by switching the instance's class (cheaper than ``object.__setattr__``
    per field, which a per-request object pays on every request)."""

    __slots__ = _SLOTS

    method: str
    scheme: str
    path: str
    root_path: str
    raw_path: bytes
    query_string: bytes
    _headers: Headers | None  # None only in a driver's head, until its lines are read
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    http_version: str
    values: Mapping[str, Any]
    _src: Any
    _changes: dict[str, Any] | None


class RequestHead(_HeadSlots):
    """What a middleware sees of a request; the same under WSGI and ASGI.

    Immutable. Fields: ``method``, ``scheme``, ``path`` (decoded, including
    ``root_path``), ``root_path``, ``raw_path``, ``query_string``,
    ``headers`` (lowercase byte pairs), ``client``, ``server``,
    ``http_version`` and ``values``: per-request values a middleware attaches
    for everything downstream (keys are namespaced, e.g.
    ``"bridge.csp_nonce"``); a WSGI app reads them as environ keys and an
    ASGI app as scope keys of the same name.

    The drivers' heads translate each field and header from the environ or
    scope when it is first read, so a middleware pays only for what it reads.
    """

    __slots__ = ()

    def __new__(
        cls,
        method: str,
        scheme: str,
        path: str,
        root_path: str,
        raw_path: bytes,
        query_string: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        http_version: str = "1.1",
        values: Mapping[str, Any] = NO_VALUES,
    ) -> RequestHead:
        head = object.__new__(_HeadSlots)
        head.method = method
        head.scheme = scheme
        head.path = path
        head.root_path = root_path
        head.raw_path = raw_path
        head.query_string = query_string
        head._headers = headers if type(headers) is tuple else tuple(headers)
        head.client = client
        head.server = server
        head.http_version = http_version
        head.values = values
        head.__class__ = cls  # frozen from here on
        return head  # type: ignore[return-value]  # frozen above; no cast() call

    @property
    def headers(self) -> Headers:
        """Request header lines: lowercase names, repeated names joined, order kept."""
        return self._headers or ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RequestHead is immutable; use head.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("RequestHead is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestHead):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _REQUEST_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in _REQUEST_FIELDS)
        return f"RequestHead({fields})"

    def same_headers(self, other: RequestHead) -> bool:
        """True when both heads certainly carry the same header lines (cheap check first)."""
        return self._headers is other._headers or self.headers == other.headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of request header ``name`` (lowercase bytes), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of request header ``name`` (lowercase bytes), in order."""
        return [value for key, value in self.headers if key == name]

    def replace(self, **changes: Any) -> RequestHead:
        """A copy with ``changes`` applied (field names as above)."""
        if not _FIELD_NAMES.issuperset(changes):
            raise TypeError(f"RequestHead has no field {sorted(changes.keys() - _FIELD_NAMES)}")
        get = changes.get
        return RequestHead.__new__(
            type(self),
            get("method", self.method),
            get("scheme", self.scheme),
            get("path", self.path),
            get("root_path", self.root_path),
            get("raw_path", self.raw_path),
            get("query_string", self.query_string),
            get("headers", self.headers),
            get("client", self.client),
            get("server", self.server),
            get("http_version", self.http_version),
            get("values", self.values),
        )

    def replaced(self, changes: dict[str, Any]) -> RequestHead:
        """``replace(**changes)`` for changes already in a dict, which the new head
        may keep: it must not be changed afterwards."""
        return self.replace(**changes)

    def with_value(self, key: str, value: Any) -> RequestHead:
        """A copy whose ``values`` also maps ``key`` to ``value``."""
        return self.replace(values=MappingProxyType({**self.values, key: value}))

    @property
    def host(self) -> str | None:
        """The Host header as text (latin-1), or None."""
        value = self.header(b"host")
        return None if value is None else value.decode("latin-1")


# -- response head and respond-now responses ---------------------------------


class ResponseHead(NamedTuple):
    """The status and header lines of a response, before they are sent.

    ``trailers`` is True when the app announced trailers (ASGI
    ``"trailers": True``): they follow the body, so it must not be held back.
    Immutable; a named tuple because one or two are made per response and a
    tuple is the cheapest immutable record to make.
    """

    status: int
    headers: Headers
    trailers: bool = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of response header ``name`` (any case), or None."""
        return header_value(self.headers, name)

    def replace(
        self,
        *,
        status: int | None = None,
        headers: Headers | None = None,
        trailers: bool | None = None,
    ) -> ResponseHead:
        """A copy with the given fields changed."""
        return ResponseHead(
            self.status if status is None else status,
            self.headers if headers is None else headers,
            self.trailers if trailers is None else trailers,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response a middleware sends instead of calling the app."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    @classmethod
    def text(cls, status: int, message: str | None = None, headers: Headers = ()) -> Response:
        """A ``text/plain`` response; the message defaults to the reason phrase."""
        body = (message if message is not None else reason_phrase(status)).encode("utf-8")
        base = (
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        )
        return cls(status, (*base, *headers), body)

    @classmethod
    def problem(
        cls,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: Headers = (),
        **members: Any,
    ) -> Response:
        """An RFC 9457 ``application/problem+json`` response.

        ``title`` defaults to the reason phrase; extra ``members`` go into the
        JSON object as they are. The same as ``Response.error(status, detail,
        error_format="problem+json", ...)``.
        """
        if title is not None:
            members["title"] = title
        return cls.error(status, detail, error_format="problem+json", headers=headers, **members)

    @classmethod
    def error(
        cls,
        status: int,
        detail: str | None = None,
        *,
        error_format: ErrorFormat = "text",
        headers: Headers = (),
        **members: Any,
    ) -> Response:
        """An error response, rendered as bridge renders its own errors.

        ``error_format="text"`` (default): ``text/plain``, the reason phrase and
        ``": "`` + ``detail`` when given, one line. ``"problem+json"``: RFC 9457
        with ``type``, ``title``, ``status``, ``detail`` and any extra ``members``
        (the text format ignores them). The adapters and every middleware answer
        their own errors with this body, so a status reads the same everywhere.

        .. versionadded:: 0.1
        """
        rendered = error_body(status, detail, error_format, members)
        return cls(status, (*rendered.headers, *headers), rendered.body)

    @property
    def head(self) -> ResponseHead:
        """The status and headers as a :class:`ResponseHead`."""
        return ResponseHead(self.status, self.headers)
