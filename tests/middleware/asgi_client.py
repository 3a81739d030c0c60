"""One request to an in-process ASGI app (FastAPI, Starlette) through httpx, on any backend."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

__all__ = ("asgi_request",)


def asgi_request(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    base_url: str = "http://testserver",
    backend: str = "asyncio",
) -> httpx.Response:
    """Send one request to ``app`` through ``httpx.ASGITransport`` on a new event loop."""

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            response = await client.request(method, path, headers=headers)
            await response.aread()
            return response

    return anyio.run(main, backend=backend)
