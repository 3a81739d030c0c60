"""Request heads from scopes and environs, and rewritten heads back onto them.

All rules come from ``bridge._http.translate``; this module only moves fields
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

from bridge._http.translate import apply_scope_fields_to_environ
from bridge._http.types import Environ
from bridge.middleware._core.heads import SCOPE_FIELDS, RequestHead, remove_header, set_header
from bridge.middleware._core.sourced import (
    VALUES_KEY,
    head_from_environ,
    head_from_scope,
    recorded_changes,
)

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


#: The fields compared when a head did not come from the other by ``replace``.
_COMPARED: Final = tuple(sorted(SCOPE_FIELDS - {"headers"}))


def _changed(old: RequestHead, new: RequestHead) -> list[str]:
    changed = [name for name in _COMPARED if getattr(old, name) != getattr(new, name)]
    if not new.same_headers(old):
        changed.append("headers")
    return changed


#: Recorded changes whose environ keys depend on no other field (the writer skips
#: ``values``, which is not a scope field).
_OWN_KEYS: Final = frozenset({"method", "scheme", "http_version", "client", "values"})


def _set_values(target: dict[str, Any], old: RequestHead, new: RequestHead) -> None:
    values = new.values
    if values is old.values:
        return
    if old.values:
        for key in old.values:
            if key not in values:
                target.pop(key, None)
    target.update(values.items())  # a read-only mapping's items: the quickest update
    target[VALUES_KEY] = values


def scope_with_head(scope: HTTPScope, old: RequestHead, new: RequestHead) -> HTTPScope:
    """A copy of ``scope`` carrying the fields where ``new`` differs from ``old``."""
    if new is old:
        return scope
    source: dict[str, Any] = scope  # type: ignore[assignment]  # read as a plain dict
    copied = dict(source)
    recorded = recorded_changes(old, new)
    if recorded is None:
        for name in _changed(old, new):
            copied[name] = list(new.headers) if name == "headers" else getattr(new, name)
    else:
        # A head field and its scope key share name and value, but for headers (a list
        # in a scope) and values (not a scope field: the scope's own key, if any, stays).
        copied.update(recorded)
        if "headers" in recorded:
            copied["headers"] = list(new.headers)
        if "values" in recorded:
            if "values" in source:
                copied["values"] = source["values"]
            else:
                del copied["values"]
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
    recorded = recorded_changes(old, new)
    if recorded is None:
        changed = _changed(old, new)
        if changed:
            apply_scope_fields_to_environ(copied, _HeadFields(new), changed)
    elif _OWN_KEYS.issuperset(recorded):
        apply_scope_fields_to_environ(copied, recorded, recorded)  # no field reads another
    else:
        apply_scope_fields_to_environ(copied, _HeadFields(new), recorded)
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
