"""Admission of ``thread_sensitive=False`` calls on asyncio under a saturated CapacityLimiter.

Waiting in ``CapacityLimiter.acquire_on_behalf_of`` costs each waiting call one extra task
wake-up (for the token) before the one for its result. A :class:`Gate` lets waiting calls
sleep only on their result: they queue in FIFO order, and a token freed by one of these
calls passes straight to the next queued call (it is a *slot*, an opaque borrower object
that moves from call to call) without going back through the limiter.

Fairness with other users of the limiter (``anyio.to_thread`` callers, other loops): a
slot passes on only while nobody else waits in the limiter's own queue; otherwise it goes
back to the limiter, which hands it to the first in line. Tokens freed elsewhere reach
the queue through one *pump* task that waits in the limiter's queue on the gate's behalf.

The pump is an asyncio task, so only calls from asyncio loops come here.

Invariants: everything here runs on the gate's loop thread; a call holds a slot from its
dispatch until its caller passes the slot on; a gate exists only while calls wait, so
idle limiters keep no state here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import anyio

from bridge._loop.origin import Origin
from bridge._loop.threads import ThreadCall, worker_pool

__all__ = ("admit", "forget", "pass_on")

_gates: dict[int, Gate] = {}  # by id(limiter); a gate references its limiter, so ids are stable


class Gate:
    def __init__(self, limiter: anyio.CapacityLimiter, origin: Origin) -> None:
        self.limiter = limiter
        self.origin = origin
        self.waiting: deque[ThreadCall] = deque()
        self.pump: asyncio.Task[None] | None = None
        self.pump_waiting = False  # the pump sits in the limiter's own queue

    def queue(self, call: ThreadCall) -> None:
        self.waiting.append(call)
        if self.pump is None:
            loop = self.origin.asyncio_loop
            if loop is None:
                raise RuntimeError("the gate admits calls from asyncio loops only")
            self.pump = loop.create_task(self._run_pump())

    def dispatch_next(self, slot: object) -> None:
        call = self.waiting.popleft()
        call.slot = slot
        worker_pool().put(call)

    async def _run_pump(self) -> None:
        limiter = self.limiter
        try:
            while self.waiting:
                slot = object()
                self.pump_waiting = True
                try:
                    await limiter.acquire_on_behalf_of(slot)
                finally:
                    self.pump_waiting = False
                if self.waiting:
                    self.dispatch_next(slot)
                else:
                    limiter.release_on_behalf_of(slot)
        finally:
            self.pump = None
            if not self.waiting and _gates.get(id(limiter)) is self:
                del _gates[id(limiter)]


def admit(call: ThreadCall, limiter: anyio.CapacityLimiter) -> None:
    """Dispatch ``call`` to the worker pool now if a token is free, else queue it."""
    gate = _gates.get(id(limiter))
    if gate is not None and gate.origin is not call.origin:
        gate = None  # left over from a loop that ended with calls queued (limiter reused)
    if gate is None:
        try:
            limiter.acquire_on_behalf_of_nowait(call)
        except anyio.WouldBlock:
            gate = _gates[id(limiter)] = Gate(limiter, call.origin)
        else:
            call.slot = call
            worker_pool().put(call)
            return
    gate.queue(call)


def forget(call: ThreadCall, limiter: anyio.CapacityLimiter) -> None:
    """A queued call's caller was cancelled before the call got a slot: drop it."""
    gate = _gates.get(id(limiter))
    if gate is not None:
        try:
            gate.waiting.remove(call)
        except ValueError:
            pass
        if not gate.waiting and gate.pump is None and _gates.get(id(limiter)) is gate:
            del _gates[id(limiter)]


def pass_on(slot: Any, limiter: anyio.CapacityLimiter, origin: Origin) -> None:
    """A call of ``origin`` has finished: its slot goes to the next queued call or back."""
    gate = _gates.get(id(limiter))
    if gate is not None and gate.waiting and gate.origin is origin:
        others_waiting = limiter.statistics().tasks_waiting - (1 if gate.pump_waiting else 0)
        if others_waiting <= 0:
            gate.dispatch_next(slot)
            return
    limiter.release_on_behalf_of(slot)
