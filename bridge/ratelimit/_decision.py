"""What one rate-limit decision was, for the app, the logs and metrics (sans-IO).

A :class:`LimitDecision` is made once per limited request, after the store
answered. The same object is

* put on the request for the app (``environ["bridge.ratelimit"]`` under WSGI,
  ``scope["bridge.ratelimit"]`` under ASGI), so a view can say "3 attempts left";
* given to the middleware's ``on_decision`` hook (metrics);
* given to a rule's ``rejection`` callable, which renders a custom 429;
* the source of the fields of the rejection's log line (:func:`log_fields`);
* where the app says what the request cost, for a rule that charges after the
  response (:meth:`LimitDecision.charge`).

It holds references only (the rule, the verdict, the head's client); the
header values and the smallest remaining count are computed when read, so a
request whose decision nobody reads pays one small allocation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._headers import retry_after_seconds

if TYPE_CHECKING:
    from bridge.ratelimit._rules import CompiledRule

__all__ = ("DECISION_KEY", "LimitDecision", "log_fields")

#: The environ / scope key holding the request's :class:`LimitDecision`.
DECISION_KEY: Final = "bridge.ratelimit"

Result = Literal["allowed", "rejected", "dry_run", "store_unavailable"]


class LimitDecision:
    """One request's rate-limit decision.

    :ivar rule: the name of the rule that applied (``"default"`` for ``limit=``).
    :ivar key: the request's key as stored (a ``sha256:`` digest where the key
        was long, unprintable or a secret digested by :func:`header_key`).
    :ivar client: the client address (ProxyHeaders' when it ran), or ``None``.
    :ivar allowed: the request reaches the app.
    :ivar result: ``"allowed"``, ``"rejected"``, ``"dry_run"`` (over the
        limit, admitted because of ``dry_run=True``) or ``"store_unavailable"``
        (a shared store is down; ``allowed`` is its failure policy's answer).
    :ivar outcomes: one :class:`~bridge.ratelimit.RateOutcome` per rate, in
        the rule's order (empty when the store was unavailable).
    """

    __slots__ = ("_rule", "allowed", "charged", "client", "key", "outcomes", "result", "settled")

    def __init__(
        self,
        rule: CompiledRule,
        key: str,
        client: str | None,
        allowed: bool,
        result: Result,
        outcomes: tuple[RateOutcome, ...],
    ) -> None:
        self._rule = rule
        self.key = key
        self.client = client
        self.allowed = allowed
        self.result: Result = result
        self.outcomes = outcomes
        #: The units the app charged with :meth:`charge`; None until it does.
        self.charged: int | None = None
        #: The request's charge is decided (a rule that charges after the response).
        self.settled = False

    def charge(self, units: int) -> None:
        """Charge this request ``units``, whatever its response (e.g. the tokens it used).

        Only for a rule that charges once the response is known (``count_when``
        or ``cost=response_cost(...)``): the units are applied when the response
        head is sent, or with ``response_cost()`` and no source when the response
        ends (on a websocket, when the connection ends). The last call wins.
        """
        if self._rule.charge is None:
            raise RuntimeError(
                f"rule {self.rule!r} charges before the app runs; give it "
                "cost=response_cost() (or count_when=) to charge from the app"
            )
        if not isinstance(units, int) or isinstance(units, bool) or units < 0:
            raise ValueError(f"charge(units): units must be an int >= 0, not {units!r}")
        if self.settled:
            raise RuntimeError(
                f"rule {self.rule!r}: the response head is sent and its charge applied; "
                "charge before it, or use cost=response_cost() to charge until the response ends"
            )
        self.charged = units

    @property
    def rule(self) -> str:
        return self._rule.name

    @property
    def policy(self) -> str:
        """The rule's ``RateLimit-Policy`` value, e.g. ``'"5/minute";q=5;w=60'``."""
        return self._rule.policy_field.decode("ascii")

    @property
    def limit(self) -> int:
        """The quota of the most constrained policy (the one with the fewest left)."""
        return self._tightest()[0]

    @property
    def remaining(self) -> int:
        """Requests still admitted right now, over all the rule's policies (>= 0)."""
        return self._tightest()[1]

    @property
    def retry_after(self) -> int | None:
        """Whole seconds until a refused request would be admitted; None when not over."""
        if self.result not in ("rejected", "dry_run"):
            return None
        return retry_after_seconds(self.outcomes)

    @property
    def violated(self) -> tuple[str, ...]:
        """The names of the policies that refused this request."""
        pairs = zip(self._rule.policies, self.outcomes, strict=False)
        return tuple(policy.name for policy, outcome in pairs if not outcome.allowed)

    def _tightest(self) -> tuple[int, int]:
        if not self.outcomes:
            return (0, 0)
        pairs = zip(self._rule.policies, self.outcomes, strict=True)
        policy, outcome = min(pairs, key=lambda pair: pair[1].remaining)
        return (policy.quota, max(0, outcome.remaining))

    def _fields(self) -> tuple[object, ...]:
        # What a client or an app can see; not the outcomes' float times.
        return (
            self.rule,
            self.policy,
            self.key,
            self.client,
            self.allowed,
            self.result,
            self.limit,
            self.remaining,
            self.retry_after,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LimitDecision):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable

    def __repr__(self) -> str:
        return (
            f"LimitDecision(rule={self.rule!r}, key={self.key!r}, result={self.result!r}, "
            f"remaining={self.remaining}, retry_after={self.retry_after})"
        )


def log_fields(decision: LimitDecision) -> dict[str, object]:
    """The ``extra=`` of a decision's log line: one ``ratelimit_*`` attribute per field."""
    return {
        "ratelimit_rule": decision.rule,
        "ratelimit_key": decision.key,
        "ratelimit_client": decision.client,
        "ratelimit_policy": decision.policy,
        "ratelimit_result": decision.result,
        "ratelimit_retry_after": decision.retry_after,
    }
