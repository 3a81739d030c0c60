"""``RateLimit`` on the middleware core.

Theory of operation
-------------------
``RateLimit.exchange`` finds the rule for the request (none: the request
passes untouched), computes its key and cost, and hands a small exchange to
the driver. The exchange asks the store: a local store (MemoryStore) inline,
a shared one (RedisStore) through a :class:`~bridge.ratelimit._store.StoreCall` effect, so the WSGI
driver makes the sync call and the ASGI driver awaits the async one. The
verdict becomes a 429 (with ``Retry-After`` and the quota fields) or a
forward whose response gets the quota fields added. Same clock, same
requests, same store state: same decisions and bytes under both interfaces.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from bridge._http.errors import ErrorFormat, check_error_format
from bridge._http.logfields import EventLog
from bridge._http.options import warn_deprecated
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware import (
    Effect,
    Exchange,
    Forward,
    Interface,
    Middleware,
    Outcome,
    RequestHead,
    Respond,
    Response,
    ResponseHead,
)
from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._charge import CountWhen, ResponseCost
from bridge.ratelimit._decision import DECISION_KEY, LimitDecision, Result, log_fields
from bridge.ratelimit._headers import (
    problem_members,
    ratelimit_fields,
    retry_after_seconds,
    retry_detail,
)
from bridge.ratelimit._keys import KeyFunc, client_address, safe_key
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._rates import Rate
from bridge.ratelimit._rejection import Rejection, compile_rejection
from bridge.ratelimit._rules import CompiledRule, Rule, compile_rules, match_rule
from bridge.ratelimit._store import (
    ChargingStore,
    CheckArgs,
    Reservation,
    Store,
    StoreCall,
    Verdict,
)

if TYPE_CHECKING:
    from bridge.ratelimit._route_link import RouteLimits

__all__ = ("AlgorithmName", "RateLimit", "check_store", "log_level_option", "websocket_option")

#: RateLimit's ``algorithm=`` values (the keys of ``ALGORITHMS``).
AlgorithmName: TypeAlias = Literal["gcra", "fixed_window", "sliding_window"]

logger = logging.getLogger("bridge.ratelimit")
log: Final = EventLog(logger, "RateLimit")

#: Retry-After for a 503 while a shared store is down and the policy is fail_closed.
UNAVAILABLE_RETRY_AFTER: Final = 5

#: What ``RateLimit(app)`` without ``limit=`` limits to (deprecated: give a limit).
IMPLICIT_LIMIT: Final = "100/minute"

OnDecision = Callable[[LimitDecision], object]


class _Unset(enum.Enum):
    UNSET = "unset"


def _warn_implicit_limit(has_rules: bool) -> None:
    what = "every request no rule matches" if has_rules else "every request"
    warn_deprecated(  # attributed to the first line outside bridge
        f"RateLimit without limit= limits {what} (static files and health checks "
        f"included) to {IMPLICIT_LIMIT!r}; pass limit={IMPLICIT_LIMIT!r} to keep that, or "
        "limit=None to limit only what rules= match. A limit will be required in 0.4."
    )


def log_level_option(level: object, who: str) -> int | None:
    if level is None or (isinstance(level, int) and not isinstance(level, bool) and level > 0):
        return level
    raise ValueError(f"{who}: log_level must be a logging level such as logging.INFO, or None")


def error_format_option(error_format: object, body: object, who: str) -> ErrorFormat:
    """``error_format``, or the deprecated ``body=`` spelling with a warning naming it."""
    if body is not None:
        if body not in ("text", "problem"):
            raise ValueError(f"body must be 'text' or 'problem', not {body!r}")
        error_format = "problem+json" if body == "problem" else "text"
        warn_deprecated(f"{who}(body={body!r}) is deprecated; use error_format={error_format!r}")
    return check_error_format(error_format)


#: The ASGI scope types of a limiter that limits websocket handshakes too.
WITH_WEBSOCKETS: Final = frozenset({"http", "websocket"})


def websocket_option(websocket: object, who: str) -> bool:
    if not isinstance(websocket, bool):
        raise TypeError(f"{who}: websocket must be True or False, not {websocket!r}")
    return websocket


def check_store(store: object) -> Store:
    if not isinstance(store, Store):
        raise TypeError(f"store must implement bridge.ratelimit.Store, not {store!r}")
    return store


class RateLimit(Middleware):
    """Limit the request rate per key, with the IETF ``RateLimit`` headers.

    ``RateLimit(app, limit, key=client_address, store=None, **options)``
    returns an app of ``app``'s interface (WSGI or ASGI).

    :param limit: the default rule's rates, e.g. ``"100/minute"``,
        ``"10/second;1000/day"``, ``"10/second burst 20"``; ``None`` to limit
        only what ``rules`` match. Leaving it out still means ``"100/minute"``
        for every request (static files included) and warns: give it.
    :param key: key function of the request head (default
        :func:`~bridge.ratelimit.client_address`, the address ProxyHeaders
        resolved); it returns ``None`` for requests that are not limited.
    :param store: a :class:`~bridge.MemoryStore` (default, per process) or
        :class:`~bridge.RedisStore` (shared by workers and machines).
    :param algorithm: ``"gcra"`` (default; nginx ``limit_req burst nodelay``
        semantics), ``"fixed_window"`` or ``"sliding_window"``.
    :param rules: :class:`~bridge.ratelimit.Rule` objects tried in order before
        the default; the first match applies.
    :param exempt: requests never limited: path patterns (``"/healthz"``
        covers ``/healthz/live``, relative to the mount point; ``"=/healthz"``
        is that path only) or a function of the request head returning True
        (default None). See docs/middleware/configuring.md.
    :param cost: units a request uses: an int (default 1), a function of the
        head, or :func:`~bridge.ratelimit.response_cost` for units known from
        the response (e.g. an LLM endpoint's tokens).
    :param count_when: count a request only when its response matches (e.g.
        failed logins): status codes such as ``(401, 403)`` or a function of the
        :class:`~bridge.middleware.ResponseHead` returning True. Default None:
        every admitted request counts. A request is still refused before the app
        runs once the quota is spent; it holds its cost while it runs, and gives
        it back when its response does not count.
    :param headers: add ``RateLimit-Policy`` and ``RateLimit`` to every response
        a rule covers (default True).
    :param legacy_headers: also add ``X-RateLimit-Limit/-Remaining/-Reset``
        (reset in seconds from now; default False).
    :param error_format: the rejection's body, ``"text"`` (default) or
        ``"problem+json"`` (RFC 9457, of type ``quota-exceeded``).
    :param rejection: the refusal of every rule without its own: a function
        ``(head, decision) -> Response`` or a ``Response`` template (see
        :class:`~bridge.ratelimit.Rule`); default None (``error_format``'s body).
    :param status: the rejection status (default 429).
    :param dry_run: compute, send headers and log would-be rejections, but
        never reject (default False).
    :param on_decision: a function called with each request's
        :class:`~bridge.ratelimit.LimitDecision` (metrics); an exception in it
        is logged, never sent to the client. Default None.
    :param log_level: the level of the one log line per rejection on the
        ``bridge.ratelimit`` logger (default ``logging.WARNING``, which the
        default uvicorn, gunicorn and Django configurations show); ``None``
        logs no rejection.
    :param websocket: also limit websocket handshakes (ASGI; default False:
        they pass through). A refused handshake gets the 429 itself where the
        server offers the websocket denial response extension, else it is
        closed before accept with code 1008 (the server answers 403).
    :param routes: accept route-level limits (:func:`~bridge.ratelimit.limit` on
        views, and the FastAPI dependency): every request carries a link to
        this middleware, and a route's check uses its store, defaults and
        response fields (default False). See "Limits next to the route" in
        docs/ratelimit.md.
    :param interface: ``"wsgi"`` or ``"asgi"`` to override detection.
    :param clock: seconds for the MemoryStore (default ``time.monotonic``;
        a shared store uses its server's clock).

    The app finds the decision under ``environ["bridge.ratelimit"]`` (WSGI)
    or ``scope["bridge.ratelimit"]`` (ASGI).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``exempt`` paths are prefixes relative to the mount point, as in every
       middleware (they were exact and included the mount point; write
       ``"=/healthz"`` for the old exact match).
    .. versionchanged:: 0.3
       Rejections are logged at WARNING with ``extra=`` fields (were INFO);
       ``on_decision``, ``rejection``, ``log_level`` and the decision on the
       request are new.
    .. versionadded:: 0.3
       ``websocket``, ``count_when`` and ``cost=response_cost(...)``.
    .. deprecated:: 0.1
        ``body="text"`` / ``body="problem"``: use ``error_format="text"`` /
        ``error_format="problem+json"``.
    .. deprecated:: 0.3
        Leaving out ``limit``: write ``limit="100/minute"`` (or ``None``).
    """

    websocket_denial_response = True
    websocket_accept_headers = True

    def __init__(
        self,
        app: Any,
        limit: str | Rate | _Unset | None = _Unset.UNSET,
        *,
        key: KeyFunc = client_address,
        store: Store | None = None,
        algorithm: AlgorithmName = "gcra",
        rules: Iterable[Rule] = (),
        exempt: Exempt = None,
        cost: int | Callable[[RequestHead], int] | ResponseCost = 1,
        count_when: CountWhen = None,
        headers: bool = True,
        legacy_headers: bool = False,
        error_format: ErrorFormat = "text",
        rejection: Rejection = None,
        status: int = 429,
        dry_run: bool = False,
        on_decision: OnDecision | None = None,
        log_level: int | None = logging.WARNING,
        websocket: bool = False,
        routes: bool = False,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
        body: str | None = None,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.error_format = error_format_option(error_format, body, "RateLimit")
        implicit = isinstance(limit, _Unset)
        if isinstance(limit, _Unset):
            limit = IMPLICIT_LIMIT
        default = None if limit is None else Rule(limit, name="default")
        default_rejection = compile_rejection(rejection)
        self.rules = compile_rules(
            rules, default, algorithm, key, cost, default_rejection, count_when
        )
        if not self.rules and not routes:
            raise ValueError(
                "nothing to limit: give a limit, at least one rule, or routes=True for "
                "limits declared on the routes"
            )
        if routes and any(rule.charge is not None for rule in self.rules):
            raise ValueError(
                "routes=True cannot be combined with count_when= or cost=response_cost(...) "
                "on the middleware's rules yet: give the charged rules to a second RateLimit"
            )
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status!r}")
        if on_decision is not None and not callable(on_decision):
            raise TypeError(f"on_decision must be a function of a decision, not {on_decision!r}")
        self.store = MemoryStore() if store is None else check_store(store)
        if any(rule.charge is not None for rule in self.rules):
            check_charging_store(self.store)
        self.algorithm = algorithm
        self.exempt = exempt_matcher(exempt, "RateLimit: exempt")
        if implicit:  # only once the rest is known to be valid: an error comes first
            _warn_implicit_limit(len(self.rules) > 1)
        self.headers = headers
        self.legacy_headers = legacy_headers
        self.status = status
        self.dry_run = dry_run
        self.on_decision = on_decision
        self.log_level = log_level_option(log_level, "RateLimit")
        if websocket_option(websocket, "RateLimit"):
            self.scope_types = WITH_WEBSOCKETS  # type: ignore[misc]  # this instance's choice
        self._warned_missing_key = False
        self._warned_hook = False
        # One rule for every path and method (the common case): no matching per request.
        only = self.rules[0] if self.rules else None
        self._catch_all = (
            only is not None and len(self.rules) == 1 and only.path is None and only.methods is None
        )
        self.route_limits: RouteLimits | None = None
        if routes:  # the view's half lives in _route_link; imported only when used
            from bridge.ratelimit._route_link import RouteLimits

            self.route_limits = RouteLimits(self, key, cost, default_rejection)

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        rules = self.rules
        rule = rules[0] if self._catch_all else match_rule(rules, head)
        routes = self.route_limits
        if rule is None or not rule.rates or (self.exempt is not None and self.exempt(head)):
            return None if routes is None else routes.unlimited(head, now)
        raw_key = rule.key(head)
        if raw_key is None:
            if rule.keys_by_address and not (head.client and head.client[0]):
                self._missing_address(head, rule)
            # documented: a key function's None means "not limited"
            return None if routes is None else routes.unlimited(head, now)
        cost = rule.cost
        if not isinstance(cost, int):
            cost = cost(head)
            if not isinstance(cost, int) or cost < 0:
                raise ValueError(f"rule {rule.name!r}: cost function returned {cost!r}")
        key = safe_key(raw_key)
        args = (rule.key_prefix + key, rule.rates, self.algorithm, cost, now)
        if routes is not None:
            return routes.limited(head, now, rule, key, args)
        kind = _RateLimitExchange if self.headers else _QuietRateLimitExchange
        if rule.charge is not None:
            kind = _ChargedExchange
        return kind(head, now, self, rule, key, args)

    def _missing_address(self, head: RequestHead, rule: CompiledRule) -> None:
        if not self._warned_missing_key:
            self._warned_missing_key = True
            log.warning(
                "not limited",
                head,
                "rule %r: the request has no client address (e.g. a unix socket without "
                "ProxyHeaders); such requests are not rate limited. Configure ProxyHeaders "
                "or a key function. (logged once)",
                rule.name,
            )

    # -- turning a verdict into a response ---------------------------------------

    def decide(
        self, head: RequestHead, rule: CompiledRule, key: str, verdict: Verdict
    ) -> Forward | Respond:
        result: Result
        if verdict.unavailable:
            result = "store_unavailable"
        elif verdict.allowed:
            result = "allowed"
        else:
            result = "dry_run" if self.dry_run else "rejected"
        allowed = verdict.allowed or (self.dry_run and not verdict.unavailable)
        client = head.client[0] if head.client else None
        decision = LimitDecision(rule, key, client, allowed, result, verdict.outcomes)
        if self.on_decision is not None:
            self._report(decision)
        if result == "rejected" or result == "dry_run":
            self._log_rejection(head, decision)
        if allowed:
            return Forward(head.with_value(DECISION_KEY, decision))
        if verdict.unavailable:
            retry = str(UNAVAILABLE_RETRY_AFTER).encode()
            unavailable = Response.error(
                503, error_format=self.error_format, headers=((b"retry-after", retry),)
            )
            return Respond(unavailable)
        return Respond(self.rejection(head, rule, verdict, decision))

    def _report(self, decision: LimitDecision) -> None:
        assert self.on_decision is not None  # checked by the caller
        try:
            self.on_decision(decision)
        except Exception:
            if not self._warned_hook:  # once: a broken metrics hook must not flood the logs
                self._warned_hook = True
                log.error("failed", None, "on_decision hook raised (logged once)", exc_info=True)

    def _log_rejection(self, head: RequestHead, decision: LimitDecision) -> None:
        if self.log_level is None or not logger.isEnabledFor(self.log_level):
            return
        log.log(
            self.log_level,
            "would reject" if decision.result == "dry_run" else "rejected",
            head,
            "rule %r (key %s, policy %s, retry in %d s)",
            decision.rule,
            decision.key,
            decision.policy,
            decision.retry_after,
            **log_fields(decision),
        )

    def rejection(
        self, head: RequestHead, rule: CompiledRule, verdict: Verdict, decision: LimitDecision
    ) -> Response:
        retry_after = retry_after_seconds(verdict.outcomes)
        extra: list[tuple[bytes, bytes]] = [(b"retry-after", str(retry_after).encode())]
        if self.headers:
            extra += self.fields(rule, verdict)
        if rule.rejection is not None:
            return self._custom_rejection(head, rule, decision, extra)
        members = {}
        if self.error_format == "problem+json":
            members = problem_members(rule.policies, verdict.outcomes)
        detail = retry_detail(retry_after)
        return Response.error(
            self.status, detail, error_format=self.error_format, headers=tuple(extra), **members
        )

    def _custom_rejection(
        self,
        head: RequestHead,
        rule: CompiledRule,
        decision: LimitDecision,
        extra: list[tuple[bytes, bytes]],
    ) -> Response:
        assert rule.rejection is not None  # checked by the caller
        response = rule.rejection(head, decision)
        if not isinstance(response, Response):
            raise TypeError(
                f"rule {rule.name!r}: rejection returned {response!r}, not a "
                "bridge.middleware.Response"
            )
        return Response(response.status, merge_fields(response.headers, extra), response.body)

    def fields(self, rule: CompiledRule, verdict: Verdict) -> list[tuple[bytes, bytes]]:
        return ratelimit_fields(rule.policies, verdict.outcomes, legacy=self.legacy_headers)


def check_charging_store(store: Store) -> ChargingStore:
    if not isinstance(store, ChargingStore):
        raise TypeError(
            f"count_when and response_cost charge after the response, which needs a store with "
            f"reserve() and settle() (bridge.ratelimit.ChargingStore, as MemoryStore and "
            f"RedisStore are); {type(store).__name__} has not"
        )
    return store


_LIST_FIELDS: Final = (b"ratelimit-policy", b"ratelimit")
_OUR_FIELDS: Final = frozenset(
    (
        *_LIST_FIELDS,
        b"x-ratelimit-limit",
        b"x-ratelimit-remaining",
        b"x-ratelimit-reset",
        b"retry-after",
    )
)


def merge_fields(
    headers: tuple[tuple[bytes, bytes], ...], fields: list[tuple[bytes, bytes]]
) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` plus ``fields``; an inner limiter's policies stay in the same list.

    ``RateLimit-Policy`` and ``RateLimit`` are lists, so stacked limiters (a
    global one around a per-route one) each add their policies; any other
    field of ours replaces the app's.
    """
    for name, _ in headers:
        if name.lower() in _OUR_FIELDS:
            break
    else:  # the common case: nothing to merge
        return (*headers, *fields)
    ours = dict(fields)
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in _LIST_FIELDS:
            ours[lower] = value + b", " + ours[lower]
        elif lower not in ours:
            out.append((name, value))
    out.extend(ours.items())
    return tuple(out)


class _RateLimitExchange(Exchange):
    __slots__ = ("args", "key", "mw", "rule", "verdict")

    def __init__(
        self,
        head: RequestHead,
        now: float,
        mw: RateLimit,
        rule: CompiledRule,
        key: str,
        args: CheckArgs,
    ) -> None:
        super().__init__(head, now)
        self.mw = mw
        self.rule = rule
        self.key = key  # as stored, without the rule's prefix: what logs and metrics show
        self.args = args
        self.verdict: Verdict | None = None

    def request(self) -> Forward | Respond | Generator[Effect[Any], Any, Forward | Respond]:
        store = self.mw.store
        if store.local:
            self.verdict = store.check(*self.args)
            return self.mw.decide(self.head, self.rule, self.key, self.verdict)
        return self._shared(store)

    def _shared(self, store: Store) -> Generator[Effect[Any], Any, Forward | Respond]:
        self.verdict = yield StoreCall(store.check, store.check_async, self.args)
        return self.mw.decide(self.head, self.rule, self.key, self.verdict)

    def response(self, head: ResponseHead) -> ResponseHead:
        verdict = self.verdict
        if verdict is None or not verdict.outcomes:
            return head
        fields = self.mw.fields(self.rule, verdict)
        return ResponseHead(head.status, merge_fields(head.headers, fields))


class _QuietRateLimitExchange(_RateLimitExchange):
    """``headers=False``: no response hook at all, so the driver skips it."""

    __slots__ = ()

    response = Exchange.response


class _ChargedExchange(_RateLimitExchange):
    """A rule charged once its response head is known (``count_when``, ``response_cost``).

    The check reserves the rule's cost. A charge the response head decides is
    fixed in ``response``: a local store settles right there, so the head's
    fields show the charge; a shared store settles in ``finish``, after the
    response (one more round trip, only when the charge differs from the
    reservation). An app-decided charge (``response_cost()``) is read in
    ``finish``. ``finish`` settles whatever is still held, exactly once.
    """

    __slots__ = ("decision", "reservation", "response_head")

    def __init__(
        self,
        head: RequestHead,
        now: float,
        mw: RateLimit,
        rule: CompiledRule,
        key: str,
        args: CheckArgs,
    ) -> None:
        super().__init__(head, now, mw, rule, key, args)
        self.reservation: Reservation | None = None  # held until settled
        self.decision: LimitDecision | None = None
        self.response_head: ResponseHead | None = None

    def request(self) -> Forward | Respond | Generator[Effect[Any], Any, Forward | Respond]:
        store: ChargingStore = self.mw.store  # type: ignore[assignment]  # checked at construction
        if store.local:
            return self._reserved(store.reserve(*self.args))
        return self._shared_reserve(store)

    def _shared_reserve(
        self, store: ChargingStore
    ) -> Generator[Effect[Any], Any, Forward | Respond]:
        return self._reserved((yield StoreCall(store.reserve, store.reserve_async, self.args)))

    def _reserved(self, reservation: Reservation) -> Forward | Respond:
        verdict = self.verdict = reservation.verdict
        decided = self.mw.decide(self.head, self.rule, self.key, verdict)
        if verdict.allowed and not verdict.unavailable and isinstance(decided, Forward):
            self.reservation = reservation
            self.decision = decided.head.values[DECISION_KEY]
        return decided

    def response(self, head: ResponseHead) -> ResponseHead:
        self.response_head = head
        verdict = self.verdict
        outcomes = () if verdict is None else verdict.outcomes
        charge = self.rule.charge
        if self.reservation is not None and charge is not None and charge.at_head:
            units = self._units()
            if self.mw.store.local:
                outcomes = self._settle_local(units) or outcomes
        if not outcomes or not self.mw.headers:
            return head
        fields = ratelimit_fields(self.rule.policies, outcomes, legacy=self.mw.legacy_headers)
        return ResponseHead(head.status, merge_fields(head.headers, fields))

    def _units(self) -> int:
        """The final charge, fixed now: the app can no longer change it."""
        decision, charge = self.decision, self.rule.charge
        assert decision is not None  # set with the reservation
        assert charge is not None  # a charged exchange's rule charges
        if not decision.settled:
            units = charge.units(self.response_head, self.args[3], decision.charged)
            decision.charged, decision.settled = units, True
        assert decision.charged is not None  # the units, once settled
        return decision.charged

    def _settle_local(self, units: int) -> tuple[RateOutcome, ...] | None:
        reservation, self.reservation = self.reservation, None
        assert reservation is not None  # the caller checked
        store: ChargingStore = self.mw.store  # type: ignore[assignment]  # checked at construction
        key, rates, algorithm = self.args[:3]
        return store.settle(key, rates, algorithm, reservation, units, self.mw.clock())

    def finish(self, outcome: Outcome) -> Generator[Effect[Any], Any, None] | None:
        if self.reservation is None:
            return None
        units = self._units()
        if self.mw.store.local:
            self._settle_local(units)
            return None
        reservation, self.reservation = self.reservation, None
        key, rates, algorithm = self.args[:3]
        store: ChargingStore = self.mw.store  # type: ignore[assignment]  # checked at construction
        # The settle happens now, not when the request came: the middleware's clock (a
        # shared store reads its own).
        args = (key, rates, algorithm, reservation, units, self.mw.clock())
        return self._shared_settle(StoreCall(store.settle, store.settle_async, args))

    def _shared_settle(self, settle: StoreCall[object]) -> Generator[Effect[Any], Any, None]:
        yield settle
