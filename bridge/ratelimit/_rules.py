"""Per-route rules: which limit, key and cost apply to a request (sans-IO).

Rules are tried in order and the first whose path pattern and methods match
applies; a request no rule matches gets the middleware's default limit (if
any). A rule with ``limit=None`` exempts what it matches. Everything a
request needs -- parsed rates, the advertised ``RateLimit-Policy`` value, the
store key prefix -- is computed once here, at construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from bridge.ratelimit._algorithms import ALGORITHMS
from bridge.ratelimit._headers import Policy, policies_for, policy_field
from bridge.ratelimit._keys import HeadLike, KeyFunc
from bridge.ratelimit._rates import Rate, parse_rates

__all__ = ("CompiledRule", "PathPattern", "Rule", "compile_rules", "path_matcher")

PathPattern: TypeAlias = "str | re.Pattern[str]"
Cost: TypeAlias = "int | Callable[[HeadLike], int]"
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")


@dataclass(frozen=True)
class Rule:
    """A limit for the requests matching ``path`` and ``methods``.

    :param limit: rate string such as ``"5/minute;100/day"``, or ``None`` to
        exempt matching requests.
    :param path: ``"/login"`` (exact), ``"/api/*"`` (prefix: everything
        under ``/api/``, and ``/api`` itself), or a compiled regular
        expression matched against the whole path; ``None`` (default) matches
        every path. Paths include the mount point (``root_path``).
    :param methods: e.g. ``{"POST"}``; ``None`` (default) matches every method.
    :param key: key function for this rule (default: the middleware's).
    :param cost: units each request uses, an int or a function of the request
        head (default: the middleware's).
    :param name: names the rule's counters in the store (default derived from
        ``path`` and ``methods``); rules with the same name and limit share
        their counters.
    """

    limit: str | Rate | None
    path: PathPattern | None = None
    methods: Collection[str] | None = None
    key: KeyFunc | None = None
    cost: Cost | None = None
    name: str | None = None


def path_matcher(pattern: PathPattern) -> Callable[[str], bool]:
    """A predicate over paths for one pattern (see :class:`Rule`)."""
    if isinstance(pattern, re.Pattern):
        return lambda path: pattern.fullmatch(path) is not None
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"path pattern {pattern!r} must be a string starting with '/' or a regex")
    if pattern.endswith("/*"):
        base = pattern[:-2]
        return lambda path: path == base or path.startswith(base + "/")
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return lambda path: path.startswith(prefix)
    if "*" in pattern:
        raise ValueError(f"path pattern {pattern!r}: '*' is only allowed at the end")
    return lambda path: path == pattern


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with everything precomputed; ``rates`` is empty for an exemption."""

    name: str
    rates: tuple[Rate, ...]
    policies: tuple[Policy, ...]
    policy_field: bytes
    key: KeyFunc
    cost: Cost
    key_prefix: str
    matches_path: Callable[[str], bool] | None
    methods: frozenset[str] | None

    def matches(self, head: HeadLike) -> bool:
        if self.methods is not None and head.method not in self.methods:
            return False
        return self.matches_path is None or self.matches_path(head.path)


def _check_cost(cost: object) -> None:
    if callable(cost):
        return
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ValueError(f"cost must be a non-negative int or a function, not {cost!r}")


def _rule_name(rule: Rule) -> str:
    if rule.name is not None:
        if not _SAFE_NAME.fullmatch(rule.name):
            raise ValueError(
                f"rule name {rule.name!r} must be 1-64 characters of letters, digits and _.:/@+-"
            )
        return rule.name
    methods = "+".join(sorted(rule.methods)) if rule.methods else "*"
    path = rule.path.pattern if isinstance(rule.path, re.Pattern) else rule.path or "*"
    return f"{methods}:{path}"


def compile_rule(rule: Rule, algorithm: str, key: KeyFunc, cost: Cost) -> CompiledRule:
    """Validate ``rule`` and precompute what each request needs."""
    rates = () if rule.limit is None else parse_rates(rule.limit)
    if algorithm != "gcra" and any(r.burst != r.count - 1 for r in rates):
        raise ValueError(f"'burst' needs algorithm='gcra'; {algorithm!r} has no burst")
    _check_cost(rule.cost if rule.cost is not None else cost)
    name = _rule_name(rule)
    policies = policies_for(rates, algorithm)
    methods = None if rule.methods is None else frozenset(m.upper() for m in rule.methods)
    return CompiledRule(
        name=name,
        rates=rates,
        policies=policies,
        policy_field=policy_field(policies),
        key=rule.key or key,
        cost=rule.cost if rule.cost is not None else cost,
        key_prefix=f"{name}|{algorithm}|{';'.join(r.name for r in rates)}|",
        matches_path=None if rule.path is None else path_matcher(rule.path),
        methods=methods,
    )


def compile_rules(
    rules: Iterable[Rule], default: Rule | None, algorithm: str, key: KeyFunc, cost: Cost
) -> tuple[CompiledRule, ...]:
    """The rules in matching order, the default (matching everything) last."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if not callable(key):
        raise ValueError(f"key must be a function of the request head, not {key!r}")
    compiled = [compile_rule(rule, algorithm, key, cost) for rule in rules]
    if default is not None:
        compiled.append(compile_rule(default, algorithm, key, cost))
    return tuple(compiled)


def match_rule(rules: tuple[CompiledRule, ...], head: HeadLike) -> CompiledRule | None:
    """The first rule matching ``head``; None when none does."""
    for rule in rules:
        if rule.matches(head):
            return rule
    return None
