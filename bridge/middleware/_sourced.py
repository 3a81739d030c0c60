"""Request heads that keep the environ or scope they were read from.

The drivers build one head per request. Its scalar fields are translated up
front (a few dict reads each); its header lines are not: most middleware read
one or two headers, or none, so the head keeps its source and translates a
header when it is asked for, and the whole list only when that is read.

Invariants:

* Fields and headers read the same as from a head built field by field with
  the rules of ``bridge._translate`` (the conformance tests compare them).
* ``replace`` keeps the source and records the fields it was given
  (``_changes``, accumulated over several ``replace`` calls), so applying the
  new head to the environ or scope writes just those fields instead of
  comparing every field of two heads. A head whose source is unchanged shares
  the source's header lines.
* Header lines not yet read come from the source when they are, as the
  request's (the drivers never mutate a caller's environ or scope).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from asgiref.typing import HTTPScope

from bridge._translate import (
    BadRequest,
    environ_header,
    headers_from_environ,
    normalize_request_headers,
    parse_content_length,
    request_fields_from_environ,
    split_root_path,
)
from bridge._types import Environ

from ._heads import NO_VALUES, Headers, RequestHead, _set, unfrozen_head

__all__ = ("VALUES_KEY", "environ_head", "recorded_changes", "scope_head")

#: Key of the mapping of all per-request values (``RequestHead.values``) in
#: environs and scopes.
VALUES_KEY: Final = "bridge.values"


class _SourcedHead(RequestHead):
    """A head whose header lines come from ``_src`` when first read."""

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

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

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
        copy = self._copied(changes)
        copy._src = self._src
        copy._changes = changes if self._changes is None else {**self._changes, **changes}
        copy.__class__ = type(self)
        return copy  # type: ignore[return-value]  # a head since the class switch


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


def environ_head(environ: Environ) -> RequestHead:
    """The head of a PEP 3333 environ. Raises ``BadRequest`` for a non-UTF-8 path."""
    method, scheme, path, root_path, raw_path, query, client, server, version = (
        request_fields_from_environ(environ)
    )
    # Filled while a plain slots object, then frozen by the class switch (see _heads).
    head = unfrozen_head(method, scheme, path, root_path, raw_path, query)
    head.client = client
    head.server = server
    head.http_version = version
    head.values = environ.get(VALUES_KEY, NO_VALUES)
    head._src = environ
    head._changes = None
    head.__class__ = _EnvironHead
    return head  # type: ignore[return-value]  # a head since the class switch


# -- scope --------------------------------------------------------------------------


class _ScopeHead(_SourcedHead):
    __slots__ = ()

    def _load_headers(self) -> Headers:
        return tuple(normalize_request_headers(self._src["headers"]))


def scope_head(scope: HTTPScope) -> RequestHead:
    """The head of an ASGI ``http`` or ``websocket`` scope."""
    fields: dict[str, Any] = scope  # type: ignore[assignment]  # read as a plain dict
    get = fields.get
    root_path, path_info = split_root_path(scope["path"], get("root_path", ""))
    path = root_path + path_info
    raw_path: bytes | None = get("raw_path")
    if raw_path is None:
        raw_path = quote(path, safe="/;=,:@!$&'()*+~").encode("ascii")
    client = get("client")
    server = get("server")
    head = unfrozen_head(
        get("method", "GET"),  # websocket scopes have none
        get("scheme", "http"),
        path,
        root_path,
        raw_path,
        get("query_string", b""),
    )
    head.client = client if client is None or type(client) is tuple else (client[0], client[1])
    # some servers send lists
    head.server = server if server is None or type(server) is tuple else (server[0], server[1])
    head.http_version = get("http_version", "1.1")
    head.values = get(VALUES_KEY, NO_VALUES)
    head._src = scope
    head._changes = None
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
