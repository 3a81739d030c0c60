"""Charging a request once its response is known: ``count_when`` and ``response_cost`` (sans-IO).

Theory of operation
-------------------
A rule that charges after the response still decides before the app runs:
the request is admitted only while its rule has room for the units it
reserves (its ``cost``, or ``response_cost``'s ``reserve``), and it holds them
while it runs, so concurrent attempts cannot pass a spent quota together.
When the response head is known, the request is charged its final units and
the store moves the key's state by the difference (``Store.settle``):

* ``count_when`` (status codes or a predicate of the response head): the
  reserved cost when the response matches, else nothing (the reservation is
  given back);
* ``cost=response_cost(...)``: the units named by a response header or a
  function of the response head;
* ``decision.charge(units)``, called by the app on its ``LimitDecision``: those
  units, whatever the response (on a websocket, which has no response head
  here, this is the only charge).

When: a charge the response head decides is fixed as the head is sent (a
MemoryStore settles there, so the head's ``RateLimit`` fields show it; a
shared store settles after the response, in one more round trip). With
``response_cost()`` and no source, the app's ``charge()`` is read when the
response ends, so a streamed answer can charge what it used at its end.

No response head (the app failed before it, or the client went away) charges
nothing unless the app said otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Final, TypeAlias

from bridge._http.headers import invalid_name, is_token, parse_length
from bridge.middleware import ResponseHead

__all__ = ("Charge", "CountWhen", "ResponseCost", "compile_charge", "response_cost")

logger = logging.getLogger("bridge.ratelimit")

#: ``count_when=``: a status, status codes, or a predicate of the response head.
CountWhen: TypeAlias = "int | Collection[int] | Callable[[ResponseHead], bool] | None"


class ResponseCost:
    """``cost=response_cost(...)``: the units a request costs, read from its response.

    Made by :func:`response_cost`; see there.
    """

    __slots__ = ("_warned", "default", "function", "header", "reserve")

    def __init__(
        self,
        header: bytes | None,
        function: Callable[[ResponseHead], int] | None,
        default: int,
        reserve: int,
    ) -> None:
        self.header = header
        self.function = function
        self.default = default
        self.reserve = reserve
        self._warned = False  # one log line for a malformed value, not one per request

    def units(self, response: ResponseHead) -> int:
        """This response's units: the header's value, the function's, else ``default``."""
        if self.function is not None:
            units = self.function(response)
            if not isinstance(units, int) or isinstance(units, bool) or units < 0:
                raise ValueError(f"response_cost function returned {units!r}, not an int >= 0")
            return units
        if self.header is None:
            return self.default
        value = response.header(self.header)
        if value is None:
            return self.default
        parsed = parse_length(value)
        if parsed is None:
            self._warn(value)
            return self.default
        return parsed

    def _warn(self, value: bytes) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "response_cost: response header %s is %r, not a whole number; charged the "
                "default %d (logged once)",
                self.header.decode("ascii") if self.header else "-",
                value[:40],
                self.default,
            )


def _non_negative(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"response_cost: {what} must be an int >= 0, not {value!r}")
    return value


def response_cost(
    source: str | Callable[[ResponseHead], int] | None = None,
    *,
    default: int = 0,
    reserve: int = 1,
) -> ResponseCost:
    """A ``cost=`` decided by the response: e.g. the tokens an LLM endpoint used.

    :param source: the name of a response header holding the units (e.g.
        ``"x-tokens-used"``), or a function of the
        :class:`~bridge.middleware.ResponseHead` returning them; None: only
        what the app charges with ``decision.charge(units)``.
    :param default: the units when the header is missing or not a whole
        number (default 0).
    :param reserve: the units a request must find left to be admitted, held
        while it runs (default 1).

    The app may always set the units itself, on the decision it finds on the
    request: ``environ["bridge.ratelimit"].charge(1234)`` (``scope`` under ASGI);
    that wins over ``source``.

    .. versionadded:: 0.3
    """
    header = function = None
    if isinstance(source, str):
        if not is_token(source):
            raise ValueError(f"response_cost: {invalid_name(source)}")
        header = source.lower().encode("ascii")
    elif callable(source):
        function = source
    elif source is not None:
        raise TypeError(
            f"response_cost: source must be a header name or a function of the response "
            f"head, not {source!r}"
        )
    return ResponseCost(
        header, function, _non_negative(default, "default"), _non_negative(reserve, "reserve")
    )


class Charge:
    """A rule's after-response charge, compiled: which responses count, and for how much."""

    __slots__ = ("after", "at_head", "counts")

    def __init__(
        self, counts: Callable[[ResponseHead], bool] | None, after: ResponseCost | None
    ) -> None:
        self.counts = counts
        self.after = after
        #: The response head decides the units (else the app does, until the response ends).
        self.at_head = after is None or after.header is not None or after.function is not None

    def units(self, response: ResponseHead | None, reserved: int, app_units: int | None) -> int:
        """What the request is charged, given its response head (None: there was none)."""
        if app_units is not None:
            return app_units
        if response is None or (self.counts is not None and not self.counts(response)):
            return 0
        return reserved if self.after is None else self.after.units(response)


_STATUSES: Final = range(100, 600)


def _statuses(count_when: object, where: str) -> frozenset[int]:
    codes = (count_when,) if isinstance(count_when, int) else count_when
    if (
        isinstance(codes, Collection)
        and not isinstance(codes, str | bytes)
        and codes
        and all(isinstance(c, int) and not isinstance(c, bool) and c in _STATUSES for c in codes)
    ):
        return frozenset(codes)
    raise TypeError(
        f"{where}count_when must be status codes such as (401, 403) or a function of the "
        f"response head returning True for a response to count, not {count_when!r}"
    )


def _status_in(statuses: frozenset[int]) -> Callable[[ResponseHead], bool]:
    def counts(response: ResponseHead) -> bool:
        return response.status in statuses

    return counts


def compile_charge(count_when: object, cost: object, where: str = "") -> Charge | None:
    """The rule's :class:`Charge`, or None when it is charged before the app runs (the usual)."""
    if count_when is None and not isinstance(cost, ResponseCost):
        return None
    counts: Callable[[ResponseHead], bool] | None = None
    if callable(count_when):
        counts = count_when
    elif count_when is not None:
        counts = _status_in(_statuses(count_when, where))
    return Charge(counts, cost if isinstance(cost, ResponseCost) else None)
