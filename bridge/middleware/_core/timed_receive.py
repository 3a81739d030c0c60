"""``receive()`` bounded in time, paying for a deadline only when it waits.

An ASGI server usually holds the next request message already (the body
arrived with the head, or in the same packet), so ``await receive()``
returns without suspending. An anyio cancel scope entered around every
receive costs about 10 us on asyncio, far more than the receive itself, yet
a deadline can only fire while the call is suspended. So on asyncio:

* the receive coroutine is stepped once, outside any deadline; when it
  finishes in that step (the common case) there is nothing to time;
* when it suspends, an ``asyncio.timeout`` is entered *before* the event
  loop sees the suspension and the rest of the call runs inside it
  (:func:`_resume` forwards every value and exception between the task and
  the call), so the deadline bounds exactly the time spent waiting.

``asyncio.timeout`` and not an anyio scope: the first step may have entered
cancel scopes of its own (a ``receive`` wrapped by another middleware, or
``anyio.sleep``); an anyio scope entered after them would break their nesting,
while ``asyncio.timeout`` only cancels the task and takes back exactly its
own cancellation (``Task.uncancel``), which anyio scopes and asyncio both
honour. On trio, whose receive always checkpoints (a step never finishes
without suspending), and for an awaitable that is not a native coroutine, the
call simply runs inside an anyio deadline scope.

Invariants: cancellation from outside and exceptions from ``receive`` reach
the caller unchanged; None means the deadline passed while waiting.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import anyio

__all__ = ("receive_within",)

Message = dict[str, Any]


async def receive_within(
    receive: Callable[[], Awaitable[Message]], seconds: float
) -> Message | None:
    """The next message from ``receive``; None when none came within ``seconds``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no asyncio loop: trio
        return await _within_scope(receive(), seconds)
    call = receive()
    if type(call) is not types.CoroutineType:
        return await _within_scope(call, seconds)
    try:
        yielded = call.send(None)
    except StopIteration as done:  # finished without waiting: nothing to time
        result: Message = done.value
        return result
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            return await _resume(call, yielded)
    except TimeoutError:
        if timeout.expired():
            return None
        raise  # the receive's own TimeoutError


async def _within_scope(call: Awaitable[Message], seconds: float) -> Message | None:
    with anyio.CancelScope(deadline=anyio.current_time() + seconds) as scope:
        message = await call
    return None if scope.cancelled_caught else message


@types.coroutine
def _resume(call: Coroutine[Any, Any, Message], yielded: Any) -> Generator[Any, Any, Message]:
    """Finish ``call``, which has just yielded ``yielded`` for the event loop."""
    while True:
        error: BaseException | None = None
        try:
            sent = yield yielded
        except GeneratorExit:  # the awaiting coroutine is being closed
            call.close()
            raise
        except BaseException as exc:  # cancellation and other errors go into the call
            error = exc
        try:
            # Thrown outside the except block: the call's own error keeps its own context.
            yielded = call.send(sent) if error is None else call.throw(error)
        except StopIteration as done:
            result: Message = done.value
            return result
        finally:
            error = None  # no frame <-> traceback cycle
