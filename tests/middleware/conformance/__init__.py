"""The conformance table: every case runs under WSGI and ASGI (asyncio and trio).

How to add cases
----------------
Put a module named ``cases_<area>.py`` in this folder defining ``CASES`` (a
list of :class:`Case`) and, optionally, ``ASGI_CASES`` (a list of
:class:`AsgiCase`). ``test_conformance.py`` collects every such module; no
other file needs editing.

A :class:`Case` is one stack and a sequence of :class:`Step` requests:

* ``build(app, clock)`` wraps an inner app in the middleware under test and
  returns the wrapped app. It is called once per interface with the WSGI or
  ASGI form of ``inner`` (an :class:`bridge.testing.InnerApp`) and a fresh
  :class:`bridge.testing.FakeClock` (starting at 1000.0), so state such as a
  rate limiter's counters starts empty for each interface.
* Each :class:`Step` advances the clock by ``advance`` seconds, sends
  ``request`` and checks the :class:`bridge.testing.Result`: ``status``,
  ``headers`` (the exact list, in order), ``has_headers`` (lines that must be
  present), ``lacks_headers`` (names that must be absent), ``body``, ``error``
  (True when the app must fail after the response started) and ``seen`` (a
  function that asserts on what the inner app saw, or None).

The test asserts that the WSGI results, the ASGI results on asyncio and the
ASGI results on trio are all equal, then that they meet every expectation.

An :class:`AsgiCase` is for ASGI-only behaviour (websocket and lifespan
pass-through): ``run(app)`` is an async function that drives the built app
and asserts; it runs on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.testing import FakeClock, InnerApp, Request, Seen

__all__ = ("AsgiCase", "Case", "Step")

Header = tuple[bytes, bytes]


@dataclass(frozen=True)
class Step:
    """One request of a case and what its response must be."""

    request: Request = field(default_factory=Request)
    advance: float = 0.0
    status: int | None = None
    headers: Sequence[Header] | None = None
    has_headers: Sequence[Header] = ()
    lacks_headers: Sequence[bytes] = ()
    body: bytes | None = None
    error: bool = False
    seen: Callable[[Seen | None], object] | None = None


@dataclass(frozen=True)
class Case:
    """A middleware stack and the requests sent through it under both interfaces."""

    id: str
    build: Callable[[Any, FakeClock], Any]
    steps: Sequence[Step]
    inner: InnerApp = field(default_factory=InnerApp)


@dataclass(frozen=True)
class AsgiCase:
    """ASGI-only behaviour: ``run(app)`` drives ``build(inner_asgi_app)`` and asserts."""

    id: str
    build: Callable[[Any], Any]
    run: Callable[[Any], Awaitable[None]]
