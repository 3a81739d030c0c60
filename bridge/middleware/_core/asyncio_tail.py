"""A long ``response_body`` tail sent next to the app on asyncio, with no task group per request.

The ASGI driver sends a tail over ``INLINE_FLUSH`` from a task next to the app,
so the app's last ``send`` returns at once. A task group around every app call
costs a loop iteration and two cancel scopes per request (about 7 us), although
most responses never need the task. On asyncio, :class:`AsyncioTail` makes the
task only when a tail needs it, and keeps the task group's contract:

* the host (the request's task) returns only when the app and the tail are done;
* a tail that fails while the app still runs cancels the app, and the tail's
  error is what the host raises (the app's own error is dropped, as a task
  group drops it);
* a host cancelled from outside cancels the tail and waits for it.

Other backends (trio) keep the task group (``_AsgiRun.call_app_in_group``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

import anyio

__all__ = ("AsyncioTail",)


class AsyncioTail:
    """One request's app call on asyncio, and the tail task it may need."""

    __slots__ = ("app_running", "cancelled_host", "host", "task")

    def __init__(self, host: asyncio.Task[Any]) -> None:
        self.host = host
        self.task: asyncio.Task[None] | None = None
        self.app_running = False  # True exactly while the host awaits the app
        self.cancelled_host = False  # we asked the host to cancel (undone by uncancel once)

    def start(self, tail: Coroutine[Any, Any, None]) -> None:
        """Send ``tail`` from a task next to the app (at most one per request)."""
        self.task = asyncio.get_running_loop().create_task(tail)
        self.task.add_done_callback(self._tail_done)

    def _tail_done(self, task: asyncio.Task[None]) -> None:
        # Retrieving the exception here also keeps asyncio from logging it as unretrieved.
        failed = not task.cancelled() and task.exception() is not None
        if failed and self.app_running and not self.cancelled_host:
            self.cancelled_host = True
            self.host.cancel()

    async def run(self, app_call: Awaitable[None]) -> None:
        """Await ``app_call``, then the tail task if one was started."""
        error: Exception | None = None
        self.app_running = True
        try:
            await app_call
        except Exception as exc:
            error = exc
        except asyncio.CancelledError:
            if not self.cancelled_host:  # cancelled from outside: the tail goes too
                await self._stop_tail()
                raise
        finally:
            self.app_running = False
            if self.cancelled_host:
                self.host.uncancel()  # our own request, answered by the tail's error below
        if self.task is not None:
            await self.task  # raises the tail's error; cancelling the host cancels it too
        if error is not None:
            raise error

    async def _stop_tail(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait((task,))
