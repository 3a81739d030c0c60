"""The Python examples in the middleware docs and the README section run as written."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette

from tests.docs_blocks import page_blocks, python_blocks

ROOT = Path(__file__).resolve().parents[2]
# migration.md is left out on purpose: its "before" halves import the libraries it migrates
# from (flask-talisman is not a dependency) and continue an app the reader already has.
PAGES = [
    "docs/middleware/writing.md",
    "docs/middleware/testing.md",
    "docs/middleware/proxy-headers.md",
    "docs/middleware/security-headers.md",
    "docs/middleware/headers.md",
    "docs/middleware/configuring.md",
]


def _asgi_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run_in_order(page: str) -> None:
    namespace: dict[str, Any] = {
        "__name__": "docs_example",
        # names the "wire it into your framework" lines assume you already have
        "flask_app": Flask("docs"),
        "starlette_app": Starlette(),
        "get_asgi_application": _asgi_app,
    }
    found = page_blocks(page)
    assert found, page
    for code in found:
        exec(compile(code, page, "exec"), namespace)


def test_readme_section_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Header middleware", 1)[1].split("\n### ", 1)[0]
    (code,) = python_blocks(section)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    wrapped: Iterable[Any] = [namespace["app"].wsgi_app]
    assert all(type(app).__module__.startswith("bridge.") for app in wrapped)
