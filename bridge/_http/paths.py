"""Paths: the one pattern language every middleware matches with, and path quoting (sans-IO).

Theory of operation
-------------------
Every option that names paths (``exempt=``, ``Headers(paths=...)``, a
``Rule``'s or a ``RequestBufferingRule``'s ``path``) is parsed here into
:class:`PathPattern` objects at construction, and each is matched against the
*app-relative* path: the request path minus its mount point (``root_path`` /
``SCRIPT_NAME``). So a pattern means the same thing whether the app is mounted
or not, under WSGI and ASGI alike.

The spellings (see docs/middleware/configuring.md):

* ``"/api"``: a prefix at segment boundaries -- ``/api``, ``/api/``,
  ``/api/x``, never ``/apix``. ``"/"`` matches everything.
* ``"=/healthz"``: exactly that path (nginx's ``location =``).
* ``re.compile(r"/items/\\d+")``: a regular expression matched at the start
  of the path (``re.match``); end it with ``$`` for a full match.

Two older spellings of RateLimit's rules still parse, with a
``DeprecationWarning`` naming the new one: ``"/api/*"`` (now ``"/api"``) and
``"/api*"`` (a bare string prefix, now ``re.compile("/api")``).

Invariant: a pattern never sees a path that still carries its mount point,
and a configured string that is not one of the spellings above raises at
construction; nothing is guessed per request.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeAlias, cast
from urllib.parse import quote

from bridge._http.options import warn_deprecated

__all__ = (
    "Exempt",
    "PathLike",
    "PathPattern",
    "PathSpec",
    "app_path",
    "exempt_matcher",
    "matches_any",
    "path_pattern",
    "path_patterns",
    "quote_path",
    "split_root_path",
)

#: Characters a request target's path keeps as they are (RFC 3986 pchar and "/").
_PATH_SAFE: Final = "/;=,:@!$&'()*+~"
#: The characters quoting keeps: ``_PATH_SAFE`` and quote()'s own (letters, digits, ``_.-~``).
_KEPT: Final = _PATH_SAFE + string.ascii_letters + string.digits + "_.-"


def quote_path(path: str, *, keep_escapes: bool = False) -> bytes:
    """``path`` percent-encoded as a request target's path, as ASCII bytes.

    ``keep_escapes=True`` leaves ``%`` alone, for text that is already
    percent-encoded (a forwarded prefix as the proxy sent it).
    """
    if not path.strip(_KEPT):  # every character kept (the usual path): quoting changes nothing
        return path.encode("ascii")
    return quote(path, safe=_PATH_SAFE + "%" if keep_escapes else _PATH_SAFE).encode("ascii")


def split_root_path(path: str, root_path: str) -> tuple[str, str]:
    """Return ``(script_name, path_info)`` for an ASGI ``path`` under ``root_path``.

    ``root_path`` owns ``path`` only at a segment boundary. When it does not
    own it, the server followed the older convention where ``path`` excludes
    ``root_path``, and ``path`` is taken as relative to the mount point.
    """
    root = root_path.rstrip("/")
    if not root:
        return "", path
    if path == root or path.startswith(root + "/"):
        return root, path[len(root) :]
    return root, path


def app_path(path: str, root_path: str) -> str:
    """The path below the mount point: ``path`` (which includes ``root_path``) minus it,
    by :func:`split_root_path`'s rule. Never empty."""
    return split_root_path(path, root_path)[1] or "/"


Kind = Literal["prefix", "exact", "regex"]


@dataclass(frozen=True, slots=True)
class PathPattern:
    """One parsed path pattern; :meth:`matches` takes an app-relative path."""

    kind: Kind
    text: str
    regex: re.Pattern[str] | None = None

    def matches(self, path: str) -> bool:
        if self.kind == "prefix":
            text = self.text
            return text == "/" or path == text or path.startswith(text + "/")
        if self.kind == "exact":
            return path == self.text
        regex = self.regex  # set for every "regex" pattern by path_pattern()
        return regex is not None and regex.match(path) is not None

    def __str__(self) -> str:
        """The pattern as the user would write it today."""
        if self.kind == "exact":
            return "=" + self.text
        if self.kind == "regex":
            return f"re.compile({self.text!r})"
        return self.text


PathSpec: TypeAlias = "str | re.Pattern[str] | PathPattern"


def path_pattern(spec: object, what: str) -> PathPattern:
    """Parse one pattern; ``what`` names the option in error messages."""
    if isinstance(spec, PathPattern):
        return spec
    if isinstance(spec, re.Pattern):
        if not isinstance(spec.pattern, str):
            raise TypeError(f"{what}: a regular expression must be of str, not bytes: {spec!r}")
        return PathPattern("regex", spec.pattern, spec)
    if not isinstance(spec, str):
        raise TypeError(
            f"{what}: a path pattern is a str such as '/api' or '=/healthz', or a "
            f"compiled regex, not {type(spec).__name__} {spec!r}"
        )
    exact = spec.startswith("=")
    text = spec[1:] if exact else spec
    if not text.startswith("/"):
        raise ValueError(
            f"{what}: path pattern {spec!r} must start with '/' (a prefix such as '/api') "
            f"or '=/' (an exact path such as '=/healthz')"
        )
    if "*" in text:
        return _star(spec, text, exact, what)
    if exact:
        return PathPattern("exact", text)
    return PathPattern("prefix", text.rstrip("/") or "/")


def _star(spec: str, text: str, exact: bool, what: str) -> PathPattern:
    """The deprecated ``"/api/*"`` and ``"/api*"`` spellings; '*' anywhere else is an error."""
    if exact or "*" in text[:-1]:
        raise ValueError(
            f"{what}: path pattern {spec!r}: '*' is not a wildcard here; use a prefix "
            f"('/api' covers everything under /api) or re.compile(...)"
        )
    if text.endswith("/*"):
        base = text[:-2] or "/"
        warn_deprecated(f"{what}: path pattern {spec!r} is deprecated; write {base!r}")
        return PathPattern("prefix", base)
    regex = re.compile(re.escape(text[:-1]))
    warn_deprecated(f"{what}: path pattern {spec!r} is deprecated; write re.compile({text[:-1]!r})")
    return PathPattern("regex", regex.pattern, regex)


def path_patterns(specs: object, what: str) -> tuple[PathPattern, ...]:
    """Parse a list of patterns; a single str or regex counts as a list of one."""
    if specs is None:
        return ()
    if isinstance(specs, str | re.Pattern | PathPattern):
        return (path_pattern(specs, what),)
    if isinstance(specs, bytes) or not isinstance(specs, Iterable):
        raise TypeError(
            f"{what}: give a path pattern or a list of them (e.g. ['/healthz']), not {specs!r}"
        )
    return tuple(path_pattern(spec, f"{what}[{i}]") for i, spec in enumerate(specs))


def matches_any(patterns: tuple[PathPattern, ...], path: str) -> bool:
    """True when one of ``patterns`` matches the app-relative ``path``."""
    return any(pattern.matches(path) for pattern in patterns)


class PathLike(Protocol):
    """The parts of a request head path matching reads."""

    @property
    def path(self) -> str: ...
    @property
    def root_path(self) -> str: ...


#: What ``exempt=`` takes: path patterns (one or a list) or a function of the request head.
Exempt: TypeAlias = "Callable[[Any], bool] | str | re.Pattern[str] | Iterable[PathSpec] | None"


def exempt_matcher(exempt: object, what: str = "exempt") -> Callable[[Any], bool] | None:
    """``exempt=`` as one predicate of the request head (None when nothing is exempt)."""
    if exempt is None:
        return None
    if callable(exempt):
        return cast("Callable[[Any], bool]", exempt)
    patterns = path_patterns(exempt, what)
    if not patterns:
        return None

    def exempt_path(head: PathLike) -> bool:
        return matches_any(patterns, app_path(head.path, head.root_path))

    return exempt_path
