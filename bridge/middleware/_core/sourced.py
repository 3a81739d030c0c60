"""Request heads read from the environ or scope they keep, field by field.

The drivers build one head per request, but most middleware read only a few
of its fields (SecurityHeaders: the scheme; a rate limit: the client; a
buffering rule: the method, the path and two headers). These heads keep their
source and translate a field, a header or the whole header list only when it
is first read, with the rules of ``bridge._http.translate``.

Invariants:

* Fields and headers read the same as from a head built up front with the
  rules of ``bridge._http.translate`` (the conformance tests compare them).
* ``scheme``, ``client`` and ``values`` are read up front (a dict read or
  two each, and most middleware read one of them). Any other field is read
  once, when first asked for (its slot holds ``_UNREAD`` until then), so the
  source must not change while the head is in use: a driver that hands the
  source itself to an app (which may change its environ or scope) first calls
  :func:`settle`, which points the head at a private shallow copy.
* ``replace`` keeps the source and records the fields it was given
  (``_changes``, accumulated over several ``replace`` calls), so applying the
  new head to the environ or scope writes just those fields instead of
  comparing every field of two heads; the fields it was not given are read
  from the shared source when asked for, as they would be from the original.
* A field that cannot be translated (``BadRequest``, e.g. a PATH_INFO that is
  not UTF-8) raises where it is first read, so a middleware that never reads
  it leaves it to the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from asgiref.typing import HTTPScope

from bridge._http.paths import quote_path
from bridge._http.translate import (
    BadRequest,
    environ_client,
    environ_header,
    environ_http_version,
    environ_method,
    environ_path,
    environ_query,
    environ_raw_path,
    environ_root_path,
    environ_scheme,
    environ_server,
    headers_from_environ,
    normalize_request_headers,
    parse_content_length,
    scope_header,
    split_root_path,
)
from bridge._http.types import Environ
from bridge.middleware._core.heads import (
    _FIELD_NAMES,
    NO_VALUES,
    Headers,
    RequestHead,
    _HeadSlots,
    _set,
)

__all__ = ("VALUES_KEY", "head_from_environ", "head_from_scope", "recorded_changes", "settle")

#: Key of the mapping of all per-request values (``RequestHead.values``) in
#: environs and scopes.
VALUES_KEY: Final = "bridge.values"

#: What a field's slot holds until the field is read.
_UNREAD: Final[Any] = type("_Unread", (), {"__repr__": lambda self: "<unread>"})()


class _SourcedHead(RequestHead):
    """A head whose fields and header lines come from ``_src`` when first read."""

    __slots__ = ()

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._load_headers()
            _set(self, "_headers", headers)
        return headers

    def _load_headers(self) -> Headers:
        raise NotImplementedError

    def same_headers(self, other: RequestHead) -> bool:
        if (
            type(other) is type(self)
            and self._headers is None
            and other._headers is None
            and self._src is other._src
        ):
            return True  # neither read yet: both are the source's
        return self.headers == other.headers

    def replace(self, **changes: Any) -> RequestHead:
        return self.replaced(changes)

    def replaced(self, changes: dict[str, Any]) -> RequestHead:
        if not _FIELD_NAMES.issuperset(changes):
            raise TypeError(f"RequestHead has no field {sorted(changes.keys() - _FIELD_NAMES)}")
        headers = changes.get("headers")
        if headers is not None and type(headers) is not tuple:
            changes = {**changes, "headers": tuple(headers)}
        if self._changes is not None:
            changes = {**self._changes, **changes}
        copy = _unread_storage(self._src, self.scheme, self.client, self.values, self._headers)
        for name, value in changes.items():
            setattr(copy, _SLOT_OF.get(name, name), value)
        copy._changes = changes
        copy.__class__ = type(self)
        return copy  # type: ignore[return-value]  # a head since the class switch


#: The storage slot of a field whose slot name differs from the field's.
_SLOT_OF: Final = {"headers": "_headers"}


def _unread_storage(
    source: Any,
    scheme: str,
    client: tuple[str, int] | None,
    values: Mapping[str, Any],
    headers: Headers | None,
) -> _HeadSlots:
    """The storage of a head of ``source`` with only the eager fields set (see ``_heads``).

    ``scheme``, ``client`` and ``values`` are plain slots, read up front: they cost a
    dict read or two, and most middleware read one of them (HSTS, rate-limit keys,
    proxies), where a field read on demand costs a property call on every read.
    """
    head = object.__new__(_HeadSlots)
    head.method = head.path = head.root_path = head.raw_path = _UNREAD
    head.query_string = head.server = head.http_version = _UNREAD
    head.scheme = scheme
    head.client = client
    head.values = values
    head._headers = headers
    head._src = source
    head._changes = None
    return head


def _read_on_demand(cls: type[_SourcedHead], fields: dict[str, Callable[[Any], Any]]) -> None:
    """Give ``cls`` a property per field that reads it from the source on first use."""
    for name, read in fields.items():
        slot = vars(_HeadSlots)[name]
        setattr(cls, name, property(_field_reader(slot.__get__, slot.__set__, read)))


def _field_reader(
    get: Callable[[Any], Any], put: Callable[[Any, Any], None], read: Callable[[Any], Any]
) -> Callable[[_SourcedHead], Any]:
    def field(head: _SourcedHead) -> Any:
        value = get(head)
        if value is _UNREAD:
            value = read(head._src)
            put(head, value)
        return value

    return field


def settle(head: RequestHead) -> None:
    """Make ``head`` independent of its source before the source goes to an app.

    An app may change its environ or scope (a router rewriting the path, a
    framework adding keys); fields and headers read later must still be the
    request's. A shallow copy suffices: the values themselves are immutable.
    """
    if isinstance(head, _SourcedHead):
        _set(head, "_src", dict(head._src))


# -- environ ------------------------------------------------------------------------


class _EnvironHead(_SourcedHead):
    __slots__ = ()

    def _load_headers(self) -> Headers:
        environ = self._src
        try:
            headers = tuple(headers_from_environ(environ))
            length = environ.get("CONTENT_LENGTH")
        except UnicodeEncodeError as exc:
            raise BadRequest(f"request header is not latin-1 text: {exc.reason}") from None
        if length:
            # Same check as an ASGI head's (normalize_request_headers): a server that
            # passes a malformed Content-Length through gives the same 400 under both.
            parse_content_length((str(length).encode("latin-1", "replace"),))
        return headers

    def header(self, name: bytes) -> bytes | None:
        headers = self._headers
        if headers is None:  # one environ key, not the whole list
            return environ_header(self._src, name)
        for key, value in headers:
            if key == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        if self._headers is None:
            value = environ_header(self._src, name)
            return [] if value is None else [value]
        return [value for key, value in self._headers if key == name]


_read_on_demand(
    _EnvironHead,
    {
        "method": environ_method,
        "path": environ_path,
        "root_path": environ_root_path,
        "raw_path": environ_raw_path,
        "query_string": environ_query,
        "server": environ_server,
        "http_version": environ_http_version,
    },
)


def head_from_environ(environ: Environ) -> RequestHead:
    """The head of a PEP 3333 environ; each field is translated when first read."""
    head = _unread_storage(
        environ,
        environ_scheme(environ),
        environ_client(environ),
        environ.get(VALUES_KEY, NO_VALUES),
        None,
    )
    head.__class__ = _EnvironHead
    return head  # type: ignore[return-value]  # a head since the class switch


# -- scope --------------------------------------------------------------------------


class _ScopeHead(_SourcedHead):
    __slots__ = ()

    def _load_headers(self) -> Headers:
        return tuple(normalize_request_headers(self._src["headers"]))

    def header(self, name: bytes) -> bytes | None:
        if self._headers is None:  # one scan of the scope's lines, not the whole list
            return scope_header(self._src["headers"], name)
        return RequestHead.header(self, name)

    def header_values(self, name: bytes) -> list[bytes]:
        value = self.header(name)  # request heads hold one line per name
        return [] if value is None else [value]


def _scope_paths(scope: Any) -> tuple[str, str]:
    """``(path, root_path)``: the full path under the root path (see ``split_root_path``)."""
    root_path, path_info = split_root_path(scope["path"], scope.get("root_path", ""))
    return root_path + path_info, root_path


def _scope_raw_path(scope: Any) -> bytes:
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is None:
        raw_path = quote_path(_scope_paths(scope)[0])
    return raw_path


def _pair(value: Any) -> Any:
    # Some servers send client and server as lists.
    return value if value is None or type(value) is tuple else (value[0], value[1])


_read_on_demand(
    _ScopeHead,
    {
        "method": lambda scope: scope.get("method", "GET"),  # websocket scopes have none
        "path": lambda scope: _scope_paths(scope)[0],
        "root_path": lambda scope: _scope_paths(scope)[1],
        "raw_path": _scope_raw_path,
        "query_string": lambda scope: scope.get("query_string", b""),
        "server": lambda scope: _pair(scope.get("server")),
        "http_version": lambda scope: scope.get("http_version", "1.1"),
    },
)


def head_from_scope(scope: HTTPScope) -> RequestHead:
    """The head of an ASGI ``http`` or ``websocket`` scope; each field is translated
    when first read."""
    fields: dict[str, Any] = scope  # type: ignore[assignment]  # read as a plain dict
    get = fields.get
    head = _unread_storage(
        scope, get("scheme", "http"), _pair(get("client")), get(VALUES_KEY, NO_VALUES), None
    )
    head.__class__ = _ScopeHead
    return head  # type: ignore[return-value]  # a head since the class switch


def recorded_changes(old: RequestHead, new: RequestHead) -> dict[str, Any] | None:
    """The fields ``new`` was given relative to ``old``, when ``new`` came from
    ``old.replace(...)`` (in one step or several); None when unknown."""
    if (
        isinstance(new, _SourcedHead)
        and type(old) is type(new)
        and old._changes is None
        and new._src is old._src
    ):
        return new._changes
    return None
