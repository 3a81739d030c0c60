"""One in-process ASGI HTTP request, for the benchmark scripts that drive ASGI apps.

The request body goes in as ``http.request`` messages (all available at once,
as a server that has read them would hand them over); ``receive`` then waits
for the response to end before it reports ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bridge.testing import Request

Message = dict[str, Any]


def http_scope(body_chunks: list[bytes] | None = None) -> dict[str, Any]:
    """The scope of a GET, or of a POST of ``body_chunks`` (with its Content-Length)."""
    request = Request(
        method="POST" if body_chunks else "GET",
        headers=[(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        body=body_chunks or b"",
        client=("127.0.0.1", 40000),
        server=("127.0.0.1", 8000),
    )
    return dict(request.scope())


async def asgi_request(
    app: Any, body_chunks: list[bytes] | None = None, event: Callable[[], Any] = asyncio.Event
) -> int:
    """Send one request (a POST of ``body_chunks``, else a GET); the body bytes answered.

    ``event``: the event type of the loop in use (``anyio.Event`` on trio).
    """
    chunks = body_chunks or [b""]
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    done = event()
    received = 0

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal received
        if message["type"] == "http.response.body":
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(http_scope(body_chunks), receive, send)
    return received
