"""Request heads from scopes and environs, and rewritten heads back onto them.

All rules come from ``bridge._translate``; this module only moves fields
between a :class:`RequestHead` and the interface's mapping. Invariants:

* A head built from an environ equals the head built from the scope the
  environ came from (and vice versa), including ``values``.
* Applying a head never mutates the caller's scope or environ: the result is
  a shallow copy with only the changed fields rewritten; an unchanged head
  gives back the original object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import quote

from asgiref.typing import HTTPScope

from bridge._translate import (
    BadRequest,
    apply_scope_fields_to_environ,
    environ_header_lookup,
    headers_from_environ,
    normalize_request_headers,
    parse_content_length,
    request_fields_from_environ,
    split_root_path,
)
from bridge._types import Environ

from ._heads import NO_VALUES, SCOPE_FIELDS, Headers, RequestHead, remove_header, set_header

__all__ = (
    "VALUES_KEY",
    "VALUE_PREFIX",
    "environ_with_head",
    "head_for_body",
    "head_from_environ",
    "head_from_scope",
    "scope_with_head",
)

#: Keys of per-request values (``RequestHead.values``) in environs and scopes.
VALUE_PREFIX: Final = "bridge."

#: Key of the mapping of all per-request values (the index of the keys above).
VALUES_KEY: Final = "bridge.values"


def _scope_headers(raw: Any) -> Callable[[], Headers]:
    return lambda: tuple(normalize_request_headers(raw))


def _environ_headers(environ: Environ) -> Callable[[], Headers]:
    def load() -> Headers:
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

    return load


def _server(server: Any) -> tuple[str, int | None] | None:
    if server is None or type(server) is tuple:
        return server
    return (server[0], server[1])  # some servers send lists


def head_from_scope(scope: HTTPScope) -> RequestHead:
    """The head of an ASGI ``http`` or ``websocket`` scope."""
    script_name, path_info = split_root_path(scope["path"], scope.get("root_path", ""))
    path = script_name + path_info
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is None:
        raw_path = quote(path, safe="/;=,:@!$&'()*+~").encode("ascii")
    client = scope.get("client")
    return RequestHead(
        scope.get("method", "GET"),  # websocket scopes have none
        scope.get("scheme", "http"),
        path,
        script_name,
        raw_path,
        scope.get("query_string", b""),
        _scope_headers(scope["headers"]),
        client if client is None or type(client) is tuple else (client[0], client[1]),
        _server(scope.get("server")),
        scope.get("http_version", "1.1"),
        scope.get(VALUES_KEY, NO_VALUES),  # type: ignore[arg-type]  # a key of ours
    )


def head_from_environ(environ: Environ) -> RequestHead:
    """The head of a PEP 3333 environ. Raises ``BadRequest`` for non-UTF-8 paths."""
    method, scheme, path, root_path, raw_path, query, client, server, version = (
        request_fields_from_environ(environ)
    )
    return RequestHead(
        method,
        scheme,
        path,
        root_path,
        raw_path,
        query,
        _environ_headers(environ),
        client,
        server,
        version,
        environ.get(VALUES_KEY, NO_VALUES),
        environ_header_lookup(environ),
    )


def _changed(old: RequestHead, new: RequestHead) -> list[str]:
    # Spelled out: this runs once per rewritten request, and most fields are the same object.
    changed = []
    if old.method is not new.method and old.method != new.method:
        changed.append("method")
    if old.scheme is not new.scheme and old.scheme != new.scheme:
        changed.append("scheme")
    if old.path is not new.path and old.path != new.path:
        changed.append("path")
    if old.root_path is not new.root_path and old.root_path != new.root_path:
        changed.append("root_path")
    if old.raw_path is not new.raw_path and old.raw_path != new.raw_path:
        changed.append("raw_path")
    if old.query_string is not new.query_string and old.query_string != new.query_string:
        changed.append("query_string")
    if old.client is not new.client and old.client != new.client:
        changed.append("client")
    if old.server is not new.server and old.server != new.server:
        changed.append("server")
    if old.http_version is not new.http_version and old.http_version != new.http_version:
        changed.append("http_version")
    if not new.same_headers(old):
        changed.append("headers")
    return changed


def _set_values(target: dict[str, Any], old: RequestHead, new: RequestHead) -> None:
    if new.values is old.values:
        return
    for key in old.values:
        if key not in new.values:
            target.pop(key, None)
    target.update(new.values)
    target[VALUES_KEY] = new.values


def scope_with_head(scope: HTTPScope, old: RequestHead, new: RequestHead) -> HTTPScope:
    """A copy of ``scope`` carrying the fields where ``new`` differs from ``old``."""
    if new is old:
        return scope
    copied: dict[str, Any] = dict(scope)
    for name in _changed(old, new):
        copied[name] = list(new.headers) if name == "headers" else getattr(new, name)
    _set_values(copied, old, new)
    return copied  # type: ignore[return-value]  # the same scope with some fields replaced


class _HeadFields(Mapping[str, Any]):
    """A head's fields by their scope names, read only when asked for."""

    __slots__ = ("_head",)

    def __init__(self, head: RequestHead) -> None:
        self._head = head

    def __getitem__(self, name: str) -> Any:
        if name not in SCOPE_FIELDS:
            raise KeyError(name)
        return getattr(self._head, name)

    def __iter__(self) -> Iterator[str]:
        return iter(SCOPE_FIELDS)

    def __len__(self) -> int:
        return len(SCOPE_FIELDS)


def environ_with_head(environ: Environ, old: RequestHead, new: RequestHead) -> Environ:
    """A copy of ``environ`` carrying the fields where ``new`` differs from ``old``."""
    if new is old:
        return environ
    copied = dict(environ)
    changed = _changed(old, new)
    if changed:
        apply_scope_fields_to_environ(copied, _HeadFields(new), changed)
    _set_values(copied, old, new)
    return copied


def head_for_body(head: RequestHead, length: int) -> RequestHead:
    """``head`` announcing a replacement body of ``length`` bytes (Content-Length, no chunking)."""
    headers = remove_header(head.headers, b"transfer-encoding")
    headers = set_header(headers, b"content-length", str(length).encode("ascii"))
    return head.replace(headers=headers)
