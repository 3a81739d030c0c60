"""One in-process ASGI HTTP request, for the benchmark scripts that drive ASGI apps.

The request body goes in as ``http.request`` messages (all available at once,
as a server that has read them would hand them over); ``receive`` then waits
for the response to end before it reports ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]


def http_scope(method: str = "GET", path: str = "/") -> dict[str, Any]:
    """An ASGI ``http`` scope for ``method path`` from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


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

    await app(http_scope("POST" if body_chunks else "GET"), receive, send)
    return received
