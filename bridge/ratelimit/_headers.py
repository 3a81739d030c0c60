"""Response fields for a rate-limit decision (sans-IO).

``RateLimit-Policy`` and ``RateLimit`` follow draft-ietf-httpapi-ratelimit-headers-11:
both are Structured Field Lists (RFC 8941) of String items, one per named
policy, with integer parameters ``q`` (quota) and ``w`` (window, seconds) on the
policy, ``r`` (remaining) and ``t`` (seconds until the quota is restored) on the
current state. ``Retry-After`` is whole seconds, never 0 on a rejection. The
legacy ``X-RateLimit-*`` trio describes the most constrained policy, with the
reset as a delta in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from bridge.ratelimit._algorithms import RateOutcome
from bridge.ratelimit._rates import Rate

__all__ = (
    "PROBLEM_TYPE",
    "Policy",
    "policies_for",
    "problem_members",
    "ratelimit_fields",
    "retry_after_seconds",
    "retry_detail",
)

PROBLEM_TYPE: Final = "https://iana.org/assignments/http-problem-types#quota-exceeded"
#: Structured-field integers are at most 15 digits (RFC 8941, section 3.3.1).
_SF_INT_MAX: Final = 999_999_999_999_999


class Policy:
    """A rate as advertised: its name, quota ``q`` and window ``w`` for one algorithm."""

    __slots__ = ("field", "name", "quota", "sf_name", "window")

    def __init__(self, rate: Rate, algorithm: str) -> None:
        self.name = rate.name
        self.sf_name = sf_string(rate.name)
        if algorithm == "gcra":
            self.quota, self.window = rate.capacity, rate.window
        else:
            self.quota, self.window = rate.count, rate.period
        #: This policy alone as a ``RateLimit-Policy`` value.
        self.field = f"{self.sf_name};q={self.quota};w={self.window}".encode()


def policies_for(rates: Sequence[Rate], algorithm: str) -> tuple[Policy, ...]:
    return tuple(Policy(rate, algorithm) for rate in rates)


def sf_string(text: str) -> str:
    """``text`` as an RFC 8941 String (printable ASCII; quotes and backslashes escaped)."""
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"policy name {text!r} must be printable ASCII")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(value: float) -> int:
    """Whole seconds, rounded up so a client that waits that long is never early."""
    seconds = math.ceil(value - 1e-9)
    return seconds if 0 <= seconds <= _SF_INT_MAX else min(_SF_INT_MAX, max(0, seconds))


def retry_after_seconds(outcomes: Sequence[RateOutcome]) -> int:
    """``Retry-After`` for a rejection: the longest wait among the denying policies, >= 1."""
    wait = max((o.retry_after for o in outcomes if not o.allowed), default=0.0)
    return max(1, _seconds(wait))


def policy_field(policies: Sequence[Policy]) -> bytes:
    return b", ".join(p.field for p in policies)


def ratelimit_fields(
    policies: Sequence[Policy],
    outcomes: Sequence[RateOutcome],
    *,
    legacy: bool = False,
) -> list[tuple[bytes, bytes]]:
    """The ``RateLimit-Policy`` and ``RateLimit`` fields (and ``X-RateLimit-*`` if ``legacy``)."""
    if len(policies) == 1:  # the common case, without the generator
        p, o = policies[0], outcomes[0]
        remaining = o.remaining if o.remaining > 0 else 0
        state = f"{p.sf_name};r={remaining};t={_seconds(o.reset)}"
        policy = p.field
    else:
        state = ", ".join(
            f"{p.sf_name};r={max(0, o.remaining)};t={_seconds(o.reset)}"
            for p, o in zip(policies, outcomes, strict=True)
        )
        policy = policy_field(policies)
    fields = [(b"ratelimit-policy", policy), (b"ratelimit", state.encode())]
    if legacy:
        fields.extend(_legacy_fields(policies, outcomes))
    return fields


def _legacy_fields(
    policies: Sequence[Policy], outcomes: Sequence[RateOutcome]
) -> list[tuple[bytes, bytes]]:
    index = min(range(len(outcomes)), key=lambda i: (outcomes[i].remaining, -outcomes[i].reset))
    policy, outcome = policies[index], outcomes[index]
    return [
        (b"x-ratelimit-limit", str(policy.quota).encode()),
        (b"x-ratelimit-remaining", str(max(0, outcome.remaining)).encode()),
        (b"x-ratelimit-reset", str(_seconds(outcome.reset)).encode()),
    ]


def problem_members(
    policies: Sequence[Policy], outcomes: Sequence[RateOutcome]
) -> dict[str, object]:
    """The RFC 9457 members of a ``quota-exceeded`` problem, beside status and detail."""
    violated = [p.name for p, o in zip(policies, outcomes, strict=True) if not o.allowed]
    return {
        "type": PROBLEM_TYPE,
        "title": "Request cannot be satisfied as assigned quota has been exceeded",
        "violated-policies": violated,
    }


def retry_detail(retry_after: int) -> str:
    """The detail of a rejection, in both error formats."""
    return f"retry in {retry_after} seconds."
