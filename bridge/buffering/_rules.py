"""Per-request limits for RequestBuffering: defaults plus path/method overrides.

Every rule is merged with the defaults once, at construction, so choosing the
limits of a request is one scan over a short tuple and never allocates.
Rules are tried in the order given; the first one that matches wins (like a
routing table, so a specific rule goes before a general one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from bridge._http.options import http_methods
from bridge._http.paths import PathPattern, PathSpec, app_path, path_pattern
from bridge._http.units import parse_seconds, parse_size, require_size

__all__ = ("BodyLimits", "RequestBufferingRule", "app_path", "compile_limits", "limits_for")

Mode = Literal["buffer", "stream"]
_MODES: Final = ("buffer", "stream")


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The resolved limits for one request (all sizes in bytes, times in seconds)."""

    max_body_size: int | None
    body_timeout: float | None
    body_deadline: float | None
    mode: Mode
    memory_size: int


@dataclass(frozen=True, slots=True)
class RequestBufferingRule:
    """Override :class:`~bridge.RequestBuffering` limits for some requests.

    ``path`` is a path pattern matched against the path the app sees (without
    its mount point): ``"/upload"`` matches ``/upload`` and ``/upload/big`` but
    not ``/uploads``; ``"=/upload"`` matches that path only; a compiled regular
    expression is matched at the start of the path (``re.match``).
    ``methods``: ``"POST"``, ``"PUT, POST"`` or a list (default: all). See
    docs/middleware/configuring.md. Every other option left unset keeps the
    middleware's value; set one to raise or lower it for matching requests.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``methods`` may be a string; ``"=/path"`` is the exact form.
    """

    path: PathSpec
    methods: str | Iterable[str] | None = None
    max_body_size: int | str | _Unset | None = UNSET
    body_timeout: float | _Unset | None = UNSET
    body_deadline: float | _Unset | None = UNSET
    mode: Mode | _Unset = UNSET
    memory_size: int | str | _Unset = UNSET
    _pattern: PathPattern = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = path_pattern(self.path, "RequestBufferingRule: path")
        object.__setattr__(self, "_pattern", pattern)
        methods = http_methods(self.methods, "RequestBufferingRule: methods")
        object.__setattr__(self, "_methods", methods)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method`` on the app-relative ``path``."""
        if self._methods is not None and method not in self._methods:
            return False
        return self._pattern.matches(path)


def make_limits(
    *,
    max_body_size: object,
    body_timeout: object,
    body_deadline: object,
    mode: object,
    memory_size: object,
    where: str = "",
) -> BodyLimits:
    """Validate one set of options; ``where`` prefixes the option names in errors."""
    if mode not in _MODES:
        raise ValueError(f"{where}mode must be 'buffer' or 'stream', got {mode!r}")
    return BodyLimits(
        max_body_size=parse_size(max_body_size, option=f"{where}max_body_size"),
        body_timeout=parse_seconds(body_timeout, option=f"{where}body_timeout"),
        body_deadline=parse_seconds(body_deadline, option=f"{where}body_deadline"),
        mode=mode,
        memory_size=require_size(memory_size, option=f"{where}memory_size"),
    )


def _merged(base: BodyLimits, rule: RequestBufferingRule, index: int) -> BodyLimits:
    def pick(name: str) -> object:
        value = getattr(rule, name)
        return getattr(base, name) if value is UNSET else value

    return make_limits(
        max_body_size=pick("max_body_size"),
        body_timeout=pick("body_timeout"),
        body_deadline=pick("body_deadline"),
        mode=pick("mode"),
        memory_size=pick("memory_size"),
        where=f"rules[{index}].",
    )


def compile_limits(
    base: BodyLimits, rules: Iterable[RequestBufferingRule]
) -> tuple[tuple[RequestBufferingRule, BodyLimits], ...]:
    """Each rule paired with its fully merged limits, in order."""
    compiled = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, RequestBufferingRule):
            raise TypeError(
                f"rules[{index}] must be a bridge.RequestBufferingRule, not {type(rule).__name__}"
            )
        compiled.append((rule, _merged(base, rule, index)))
    return tuple(compiled)


def limits_for(
    base: BodyLimits,
    compiled: tuple[tuple[RequestBufferingRule, BodyLimits], ...],
    method: str,
    path: str,
) -> BodyLimits:
    """The limits of the first matching rule, else ``base``."""
    for rule, limits in compiled:
        if rule.matches(method, path):
            return limits
    return base
