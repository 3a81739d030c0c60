"""The ASGI driver of ResponseBuffering.

The app's final ``send`` returns as soon as the body is held; the held body is
sent by a task next to the app, so an app that keeps running after its
response (Starlette background tasks, a WSGI app's thread under WsgiToAsgi)
neither waits for the client nor makes the client wait for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import anyio.abc

from bridge.middleware import Response

from ._response_plan import ERROR, ResponseConfig, ResponsePlan, log_app_error

__all__ = ("INLINE_FLUSH", "serve_asgi")

#: Held bodies up to this size are sent from the app's last ``send`` itself.
INLINE_FLUSH: Final = 32 * 1024


class _AsgiRun:
    __slots__ = ("flushing", "holding", "outer", "plan", "started", "task_group")

    def __init__(self, plan: ResponsePlan, outer: Callable[[Any], Awaitable[None]]) -> None:
        self.plan = plan
        self.outer = outer
        self.holding = False
        self.started = False  # the head has been sent (or is being sent by the flush task)
        self.flushing = False
        self.task_group: anyio.abc.TaskGroup | None = None

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            # Trailers follow the body; holding it would let them overtake it.
            self.holding = not message.get("trailers") and self.plan.start(
                message["status"], headers
            )
            if not self.holding:
                self.started = True
                await self.outer(message)
            return
        if not self.holding:
            await self.outer(message)
            return
        if kind != "http.response.body":  # e.g. pathsend: cannot be held
            await self.stream_from_here()
            await self.outer(message)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if body and not self.plan.hold(body):
            await self.stream_from_here()
            await self.outer(message)
            return
        if not more:
            self.holding = False
            self.started = self.flushing = True
            if self.plan.size <= INLINE_FLUSH:
                # Fits in any server's write buffer (asyncio's high-water mark is
                # 64 KiB): sending it now never waits for the client, and costs no task.
                await self.flush()
            else:
                _group(self.task_group).start_soon(self.flush)

    async def stream_from_here(self) -> None:
        """Stop holding: the app's own head, then what was held."""
        self.holding = False
        self.started = True
        plan = self.plan
        await self.outer(
            {"type": "http.response.start", "status": plan.status, "headers": plan.headers}
        )
        for chunk in plan.held():
            await self.outer({"type": "http.response.body", "body": chunk, "more_body": True})

    async def flush(self) -> None:
        plan = self.plan
        start = {
            "type": "http.response.start",
            "status": plan.status,
            "headers": plan.final_headers(),
        }
        await self.outer(start)
        for chunk in plan.held():
            await self.outer({"type": "http.response.body", "body": chunk, "more_body": True})
        await self.outer({"type": "http.response.body", "body": b"", "more_body": False})


def _group(group: anyio.abc.TaskGroup | None) -> anyio.abc.TaskGroup:
    if group is None:  # pragma: no cover - set before the app runs
        raise RuntimeError("ResponseBuffering: no task group")
    return group


async def serve_asgi(app: Any, config: ResponseConfig, scope: Any, receive: Any, send: Any) -> None:
    """One ASGI connection through ResponseBuffering."""
    if scope["type"] != "http":
        await app(scope, receive, send)
        return
    plan = ResponsePlan(config, scope["method"])
    run = _AsgiRun(plan, send)
    error: Exception | None = None
    try:
        try:
            async with anyio.create_task_group() as group:
                run.task_group = group
                try:
                    await app(scope, receive, run.send)
                except Exception as exc:
                    error = exc
        except ExceptionGroup as group_error:  # the flush task failed (client gone)
            raise _single(group_error) from None
        if error is None and run.holding:
            error = RuntimeError("the app returned before its response body was complete")
        if error is not None:
            if run.started:
                raise error
            log_app_error(plan.method, error)
            await _send_asgi_response(send, ERROR)
    finally:
        plan.close()


def _single(group: ExceptionGroup[Exception]) -> Exception:
    """The one error of the flush task, as the server would have seen it without us."""
    errors = group.exceptions
    return errors[0] if len(errors) == 1 else group


async def _send_asgi_response(send: Any, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": list(response.headers),
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
