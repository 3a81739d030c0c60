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

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, cast
from urllib.parse import quote

from asgiref.typing import HTTPScope

from bridge._translate import (
    apply_scope_fields_to_environ,
    normalize_request_headers,
    scope_from_environ,
    split_root_path,
)
from bridge._types import Environ

from ._heads import NO_VALUES, RequestHead, remove_header, set_header

__all__ = (
    "VALUE_PREFIX",
    "environ_with_head",
    "head_for_body",
    "head_from_environ",
    "head_from_scope",
    "scope_with_head",
)

#: Keys of per-request values (``RequestHead.values``) in environs and scopes.
VALUE_PREFIX: Final = "bridge."

_FIELDS: Final = (
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
)


def _values(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    found = {k: v for k, v in mapping.items() if k.startswith(VALUE_PREFIX)}
    return MappingProxyType(found) if found else NO_VALUES


def head_from_scope(scope: HTTPScope) -> RequestHead:
    """The head of an ASGI ``http`` scope. Raises ``BadRequest`` like the environ rules."""
    script_name, path_info = split_root_path(scope["path"], scope.get("root_path", ""))
    path = script_name + path_info
    raw_path = cast("bytes | None", scope.get("raw_path"))
    if raw_path is None:
        raw_path = quote(path, safe="/;=,:@!$&'()*+~").encode("ascii")
    client = scope.get("client")
    return RequestHead(
        method=scope["method"],
        scheme=scope.get("scheme", "http"),
        path=path,
        root_path=script_name,
        raw_path=raw_path,
        query_string=scope.get("query_string", b""),
        headers=tuple(normalize_request_headers(scope["headers"])),
        client=(client[0], client[1]) if client is not None else None,
        server=scope.get("server"),
        http_version=scope.get("http_version", "1.1"),
        values=_values(cast("Mapping[str, Any]", scope)),
    )


def head_from_environ(environ: Environ) -> RequestHead:
    """The head of a PEP 3333 environ. Raises ``BadRequest`` for non-UTF-8 paths."""
    scope = scope_from_environ(environ)
    return RequestHead(
        method=scope["method"],
        scheme=scope["scheme"],
        path=scope["path"],
        root_path=scope["root_path"],
        raw_path=scope["raw_path"],
        query_string=scope["query_string"],
        headers=tuple(scope["headers"]),
        client=scope["client"],
        server=scope["server"],
        http_version=scope["http_version"],
        values=_values(environ),
    )


def _changed(old: RequestHead, new: RequestHead) -> list[str]:
    return [name for name in _FIELDS if getattr(old, name) != getattr(new, name)]


def _set_values(target: dict[str, Any], old: RequestHead, new: RequestHead) -> None:
    if new.values is old.values:
        return
    for key in old.values:
        if key not in new.values:
            target.pop(key, None)
    target.update(new.values)


def scope_with_head(scope: HTTPScope, old: RequestHead, new: RequestHead) -> HTTPScope:
    """A copy of ``scope`` carrying the fields where ``new`` differs from ``old``."""
    if new is old:
        return scope
    copied = cast("dict[str, Any]", dict(scope))
    for name in _changed(old, new):
        value = getattr(new, name)
        copied[name] = list(value) if name == "headers" else value
    _set_values(copied, old, new)
    return cast("HTTPScope", copied)


def environ_with_head(environ: Environ, old: RequestHead, new: RequestHead) -> Environ:
    """A copy of ``environ`` carrying the fields where ``new`` differs from ``old``."""
    if new is old:
        return environ
    copied = dict(environ)
    changed = _changed(old, new)
    if changed:
        fields = {name: getattr(new, name) for name in _FIELDS}
        apply_scope_fields_to_environ(copied, fields, changed)
    _set_values(copied, old, new)
    return copied


def head_for_body(head: RequestHead, length: int) -> RequestHead:
    """``head`` announcing a replacement body of ``length`` bytes (Content-Length, no chunking)."""
    headers = remove_header(head.headers, b"transfer-encoding")
    headers = set_header(headers, b"content-length", str(length).encode("ascii"))
    return head.replace(headers=headers)
