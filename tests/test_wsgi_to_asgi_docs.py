"""The Python examples in the WsgiToAsgi docs and README run as written."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse

import pytest

from bridge import WsgiToAsgi
from tests.docs_blocks import page_blocks

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["docs/wsgi_to_asgi.md", "docs/migrating_wsgi_to_asgi.md", "README.md"]


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


EXAMPLES = [
    pytest.param(block, id=f"{page}-{index}")
    for page in PAGES
    for index, block in enumerate(page_blocks(page))
    if "WsgiToAsgi" in block
]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str) -> None:
    namespace: dict[str, Any] = {"wsgi_app": wsgi_app, "__name__": "docs_example"}
    exec(compile(code, "<docs>", "exec"), namespace)
    # A WsgiToAsgi, or a bridge middleware wrapped around one.
    apps = [
        v
        for v in namespace.values()
        if isinstance(v, WsgiToAsgi) or type(v).__module__.startswith("bridge.")
    ]
    mounted = "mount(" in code
    assert apps or mounted
