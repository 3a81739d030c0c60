"""The examples in docs/buffering.md run, and the apps they build answer requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs_blocks import page_blocks

DOC = Path(__file__).resolve().parent.parent / "docs" / "buffering.md"


def run_examples() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_buffering"}
    for block in page_blocks(DOC):
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


@pytest.mark.anyio
async def test_documented_examples_run_and_serve() -> None:
    namespace = run_examples()
    transport = httpx.ASGITransport(app=namespace["asgi_app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/upload", content=b"x" * 10)).json() == {"received": 10}
        too_big = await client.post("/other", content=b"x" * (2 * 1024 * 1024))
        assert too_big.status_code == 413
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        report = await client.get("/report")
    assert report.headers["content-length"] == "5000000"
