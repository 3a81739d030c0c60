"""The middleware's half of route-level limits: one request's link to the views (sans-IO).

Theory of operation
-------------------
``RateLimit(app, ..., routes=True)`` puts a :class:`RouteLink` on every
request (``environ`` / ``scope`` key ``"bridge.ratelimit.route"``). It carries
the middleware (its store, algorithm, defaults, headers and rejections) and
the request head the middleware saw. A route-level limit in a view
(:mod:`bridge.ratelimit._route`) finds it there, makes the request's store
check through the middleware's store, and leaves its outcome on the link: the
header fields to add, or the rejection to send. The exchanges here read the
link when the app's response starts and merge the fields into the response
head (or replace the app's placeholder with the rejection), so a route's
limit produces the same ``RateLimit`` / ``RateLimit-Policy`` fields and the
same 429 bytes as a middleware rule, in every framework.

Invariants: a link is per request and never outlives it; the middleware
itself holds no request's values. A route check and a middleware rule that
both cover a request are two limits, two store checks (like two stacked
limiters); a route-level limit on a request no middleware rule covers makes
the request's only check.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any, Final

from bridge.middleware import (
    Effect,
    Exchange,
    Forward,
    RequestHead,
    Respond,
    Response,
    ResponseHead,
)
from bridge.ratelimit._keys import KeyFunc
from bridge.ratelimit._middleware import RateLimit, _RateLimitExchange, merge_fields
from bridge.ratelimit._rejection import RenderRejection
from bridge.ratelimit._rules import CompiledRule, Cost
from bridge.ratelimit._store import CheckArgs

__all__ = ("ROUTE_KEY", "RouteLimits", "RouteLink")

#: The environ / scope key of the request's :class:`RouteLink`.
ROUTE_KEY: Final = "bridge.ratelimit.route"

#: The placeholder's fields a rejection replaces (its body is replaced too).
_BODY_FIELDS: Final = frozenset(
    (b"content-length", b"content-type", b"content-encoding", b"transfer-encoding")
)


class RouteLink:
    """One request's link between the middleware and the route-level limits in its view.

    :ivar limiter: the :class:`~bridge.RateLimit` the request passed.
    :ivar head: the request head that middleware saw.
    :ivar asgi: the request came in through ASGI (a view's check may await the store).
    """

    __slots__ = ("asgi", "fields", "head", "limiter", "rejection")

    def __init__(self, limiter: RateLimit, head: RequestHead) -> None:
        self.limiter = limiter
        self.head = head
        self.asgi = limiter.interface == "asgi"
        #: Header fields of the route checks that admitted the request, in check order.
        self.fields: list[tuple[bytes, bytes]] = []
        #: The response of a route check that refused the request.
        self.rejection: Response | None = None

    def __eq__(self, other: object) -> bool:
        # By value (the request and the route checks' outcome), like LimitDecision:
        # the same request gives equal links under WSGI and ASGI.
        if not isinstance(other, RouteLink):
            return NotImplemented
        mine = (self.head, self.fields, self.rejection)
        return mine == (other.head, other.fields, other.rejection)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable

    def add_fields(self, fields: list[tuple[bytes, bytes]]) -> None:
        """Record a route check's fields; a second check's policies join the same lists."""
        if not self.fields:
            self.fields = fields
            return
        self.fields = list(merge_fields(tuple(self.fields), fields))

    def response_head(self, head: ResponseHead) -> ResponseHead:
        """The app's response head with the route checks' outcome applied."""
        rejection = self.rejection
        if rejection is not None:
            kept = tuple((n, v) for n, v in head.headers if n.lower() not in _BODY_FIELDS)
            return ResponseHead(rejection.status, merge_fields(kept, list(rejection.headers)))
        if self.fields:
            return ResponseHead(head.status, merge_fields(head.headers, self.fields), head.trailers)
        return head


class _LinkedExchange(Exchange):
    """A request no middleware rule limits: only the link, and the route's outcome."""

    __slots__ = ("link", "replacing")

    def __init__(self, head: RequestHead, now: float, link: RouteLink) -> None:
        super().__init__(head, now)
        self.link = link
        self.replacing = False

    def request(self) -> Forward:
        return Forward(self.head.with_value(ROUTE_KEY, self.link))

    def response_start(self, head: ResponseHead) -> None:
        self.replacing = self.link.rejection is not None

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        return replaced_body(self.link, self.replacing, chunk, more)

    def response(self, head: ResponseHead) -> ResponseHead:
        return self.link.response_head(head)


def replaced_body(link: RouteLink, replacing: bool, chunk: bytes, more: bool) -> Iterable[bytes]:
    """The app's body, or (when a route check refused the request) the rejection's."""
    if not replacing:
        return (chunk,)
    if more:
        return ()
    assert link.rejection is not None  # replacing is set only then
    return (link.rejection.body,)


class RouteLimits:
    """What ``RateLimit(routes=True)`` keeps for route-level limits: its defaults.

    A route-level limit without its own ``key``, ``cost`` or ``rejection``
    uses these, so it keys, charges and refuses like the middleware's rules.
    """

    __slots__ = ("cost", "key", "limiter", "rejection")

    def __init__(
        self,
        limiter: RateLimit,
        key: KeyFunc,
        cost: Cost,
        rejection: RenderRejection | None,
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.rejection = rejection

    def unlimited(self, head: RequestHead, now: float) -> Exchange:
        """The exchange of a request no middleware rule limits."""
        return _LinkedExchange(head, now, RouteLink(self.limiter, head))

    def limited(
        self,
        head: RequestHead,
        now: float,
        rule: CompiledRule,
        key: str,
        args: CheckArgs,
    ) -> Exchange:
        """The exchange of a request a middleware rule limits, with the link added."""
        return _LinkedRuleExchange(head, now, self.limiter, rule, key, args)


class _LinkedRuleExchange(_RateLimitExchange):
    """A request a middleware rule limits: the rule's exchange, with the link."""

    __slots__ = ("link", "replacing")

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
        self.link = RouteLink(mw, head)
        self.replacing = False

    def request(self) -> Forward | Respond | Generator[Effect[Any], Any, Forward | Respond]:
        decided = super().request()
        if isinstance(decided, Forward | Respond):
            return self._linked(decided)
        return self._linked_later(decided)

    def _linked_later(
        self, deciding: Generator[Effect[Any], Any, Forward | Respond]
    ) -> Generator[Effect[Any], Any, Forward | Respond]:
        decided = yield from deciding
        return self._linked(decided)

    def _linked(self, decided: Forward | Respond) -> Forward | Respond:
        if isinstance(decided, Respond):
            return decided
        return Forward(decided.head.with_value(ROUTE_KEY, self.link), decided.body)

    def response_start(self, head: ResponseHead) -> None:
        self.replacing = self.link.rejection is not None

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        return replaced_body(self.link, self.replacing, chunk, more)

    def response(self, head: ResponseHead) -> ResponseHead:
        # The route's fields first, as an inner limiter's would be, then the rule's.
        head = self.link.response_head(head)
        return super().response(head) if self.mw.headers else head
