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

from collections.abc import Iterator, Mapping
from typing import Any, Final

from asgiref.typing import HTTPScope

from bridge._translate import apply_scope_fields_to_environ
from bridge._types import Environ

from ._heads import SCOPE_FIELDS, RequestHead, remove_header, set_header
from ._sourced import VALUES_KEY, environ_head, recorded_changes, scope_head

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


def head_from_scope(scope: HTTPScope) -> RequestHead:
    """The head of an ASGI ``http`` or ``websocket`` scope."""
    return scope_head(scope)


def head_from_environ(environ: Environ) -> RequestHead:
    """The head of a PEP 3333 environ. Raises ``BadRequest`` for non-UTF-8 paths."""
    return environ_head(environ)


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


def _changed_fields(old: RequestHead, new: RequestHead) -> list[str]:
    recorded = recorded_changes(old, new)
    if recorded is None:
        return _changed(old, new)
    return [name for name in recorded if name != "values"]


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
    for name in _changed_fields(old, new):
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
    changed = _changed_fields(old, new)
    if changed:
        apply_scope_fields_to_environ(copied, _HeadFields(new), changed)
    _set_values(copied, old, new)
    return copied


def head_for_body(head: RequestHead, length: int) -> RequestHead:
    """``head`` announcing a replacement body of ``length`` bytes (Content-Length, no chunking).

    ``head`` itself when it already does (a body read whole up to its declared
    Content-Length, the usual case), so the scope or environ needs no rewrite.
    Request heads hold one line per name, so checking the first line is exact.
    """
    if (
        head.header(b"content-length") == b"%d" % length
        and head.header(b"transfer-encoding") is None
    ):
        return head
    headers = remove_header(head.headers, b"transfer-encoding")
    headers = set_header(headers, b"content-length", str(length).encode("ascii"))
    return head.replace(headers=headers)
