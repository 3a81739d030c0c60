"""Per-route rules: which limit, key and cost apply to a request (sans-IO).

Rules are tried in order and the first whose path pattern and methods match
applies (paths and methods are the options language of
:mod:`bridge._http.paths` and :mod:`bridge._http.options`, the same in every
middleware); a request no rule matches gets the middleware's default limit (if
any). A rule with ``limit=None`` exempts what it matches. Everything a
request needs -- parsed rates, the advertised ``RateLimit-Policy`` value, the
store key prefix -- is computed once here, at construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from bridge._http.options import http_methods
from bridge._http.paths import PathPattern, PathSpec, app_path, path_pattern
from bridge.middleware import RequestHead
from bridge.ratelimit._algorithms import ALGORITHMS
from bridge.ratelimit._charge import Charge, CountWhen, ResponseCost, compile_charge
from bridge.ratelimit._headers import Policy, policies_for, policy_field
from bridge.ratelimit._keys import KeyFunc
from bridge.ratelimit._rates import Rate, parse_rates
from bridge.ratelimit._rejection import Rejection, RenderRejection, compile_rejection

__all__ = ("CompiledRule", "Rule", "compile_rules")

#: What a request costs before the app runs: units, or a function of the request head.
HeadCost: TypeAlias = "int | Callable[[RequestHead], int]"
Cost: TypeAlias = "HeadCost | ResponseCost"
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")


@dataclass(frozen=True)
class Rule:
    """A limit for the requests matching ``path`` and ``methods``.

    :param limit: rate string such as ``"5/minute;100/day"``, or ``None`` to
        exempt matching requests.
    :param path: a path pattern, relative to the mount point: ``"/api"``
        (``/api`` and everything under it, at segment boundaries),
        ``"=/login"`` (that path only) or a compiled regular expression
        matched at the start of the path; ``None`` (default) matches every
        path. See docs/middleware/configuring.md.
    :param methods: ``"POST"``, ``"GET, POST"`` or a list such as
        ``["GET", "POST"]``; ``None`` (default) matches every method.
    :param key: key function for this rule (default: the middleware's).
    :param cost: units each request uses, an int or a function of the request
        head, or :func:`~bridge.ratelimit.response_cost` for units known from
        the response (default: the middleware's).
    :param count_when: count a request only when its response matches: status
        codes such as ``(401, 403)`` or a function of the
        :class:`~bridge.middleware.ResponseHead` (default: the middleware's;
        None counts every admitted request).
    :param name: names the rule's counters in the store (default derived from
        ``path`` and ``methods``); rules with the same name and limit share
        their counters.
    :param rejection: this rule's refusal (default: the middleware's): a
        function ``(head, decision) -> Response`` or a ``Response`` whose body
        is a template (``$retry_after``, ``$remaining``, ``$limit``, ``$rule``,
        ``$policy``); ``Retry-After`` and the ``RateLimit`` fields are added.

    .. versionchanged:: 0.2
       ``path`` is a prefix relative to the mount point (it was exact and
       included the mount point; ``"=/login"`` is the exact form), a regex
       is matched at the start of the path, ``"/api/*"`` is deprecated for
       ``"/api"``, and ``methods`` may be a string.
    .. versionadded:: 0.3
       ``rejection``, ``count_when``, and ``cost=response_cost(...)``.
    """

    limit: str | Rate | None
    path: PathSpec | None = None
    methods: str | Collection[str] | None = None
    key: KeyFunc | None = None
    cost: Cost | None = None
    name: str | None = None
    rejection: Rejection = None
    count_when: CountWhen = None


class RequestLike(Protocol):
    """The parts of the request head that rule matching reads."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def root_path(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with everything precomputed; ``rates`` is empty for an exemption."""

    name: str
    rates: tuple[Rate, ...]
    policies: tuple[Policy, ...]
    policy_field: bytes
    key: KeyFunc
    cost: HeadCost
    key_prefix: str
    path: PathPattern | None
    methods: frozenset[str] | None
    rejection: RenderRejection | None = None
    #: The key function reads the client address, so its None means "no address".
    keys_by_address: bool = False
    #: Charged once the response head is known (``count_when``, ``response_cost``);
    #: ``cost`` is then what the request reserves.
    charge: Charge | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method`` on the app-relative ``path``."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path is None or self.path.matches(path)


def _check_cost(cost: object) -> None:
    if callable(cost) or isinstance(cost, ResponseCost):
        return
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ValueError(f"cost must be a non-negative int or a function, not {cost!r}")


def _rule_name(rule: Rule, methods: frozenset[str] | None) -> str:
    # The name prefixes the rule's store keys: it derives from the spelling the
    # user wrote, so counters survive an upgrade that reinterprets the pattern.
    if rule.name is not None:
        if not _SAFE_NAME.fullmatch(rule.name):
            raise ValueError(
                f"rule name {rule.name!r} must be 1-64 characters of letters, digits and _.:/@+-"
            )
        return rule.name
    method_part = "+".join(sorted(methods)) if methods else "*"
    path = rule.path.pattern if isinstance(rule.path, re.Pattern) else rule.path or "*"
    return f"{method_part}:{path}"


def _rates(limit: object, where: str) -> tuple[Rate, ...]:
    if limit is None:
        return ()
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        raise TypeError(
            f"{where}limit={limit!r} is a bare number; give a rate such as "
            f"'{limit}/minute' (or '{limit}/second', '{limit}/hour', '{limit}/day')"
        )
    if not isinstance(limit, str | Rate | list | tuple):
        raise TypeError(f"{where}limit must be a rate such as '100/minute', not {limit!r}")
    return parse_rates(limit)


def compile_rule(
    rule: Rule,
    algorithm: str,
    key: KeyFunc,
    cost: Cost,
    where: str = "",
    rejection: RenderRejection | None = None,
    count_when: CountWhen = None,
) -> CompiledRule:
    """Validate ``rule`` and precompute what each request needs.

    ``where`` (e.g. ``"rules[0]."``) prefixes the option names in errors.
    """
    rates = _rates(rule.limit, where)
    if algorithm != "gcra" and any(r.burst != r.count - 1 for r in rates):
        raise ValueError(f"'burst' needs algorithm='gcra'; {algorithm!r} has no burst")
    own_cost = rule.cost if rule.cost is not None else cost
    _check_cost(own_cost)
    when = rule.count_when if rule.count_when is not None else count_when
    charge = compile_charge(when, own_cost, where)
    methods = http_methods(rule.methods, f"{where}methods")
    name = _rule_name(rule, methods)
    policies = policies_for(rates, algorithm)
    own_rejection = compile_rejection(rule.rejection, where)
    key_function = rule.key or key
    return CompiledRule(
        name=name,
        rates=rates,
        policies=policies,
        policy_field=policy_field(policies),
        key=key_function,
        cost=own_cost.reserve if isinstance(own_cost, ResponseCost) else own_cost,
        key_prefix=f"{name}|{algorithm}|{';'.join(r.name for r in rates)}|",
        path=None if rule.path is None else path_pattern(rule.path, f"{where}path"),
        methods=methods,
        rejection=own_rejection or rejection,
        keys_by_address=getattr(key_function, "keys_by_address", False),
        charge=charge,
    )


def compile_rules(
    rules: Iterable[Rule],
    default: Rule | None,
    algorithm: str,
    key: KeyFunc,
    cost: Cost,
    rejection: RenderRejection | None = None,
    count_when: CountWhen = None,
) -> tuple[CompiledRule, ...]:
    """The rules in matching order, the default (matching everything) last."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if not callable(key):
        raise ValueError(f"key must be a function of the request head, not {key!r}")
    if isinstance(rules, Rule) or not isinstance(rules, Iterable):
        raise TypeError(f"rules must be a list of Rule objects, not {rules!r}")
    compiled = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rules[{index}] must be a bridge.ratelimit.Rule, not {type(rule).__name__} "
                f"{rule!r}; write e.g. Rule('5/minute', path='/login', methods='POST')"
            )
        where = f"rules[{index}]."
        compiled.append(compile_rule(rule, algorithm, key, cost, where, rejection, count_when))
    if default is not None:
        compiled.append(compile_rule(default, algorithm, key, cost, "", rejection, count_when))
    return tuple(compiled)


def match_rule(rules: tuple[CompiledRule, ...], head: RequestLike) -> CompiledRule | None:
    """The first rule matching ``head``; None when none does."""
    method, path = head.method, app_path(head.path, head.root_path)
    for rule in rules:
        if rule.matches(method, path):
            return rule
    return None
