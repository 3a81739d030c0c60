"""The Python examples in the AsgiToWsgi docs and README run as written and serve requests.

Each example is executed; every ``AsgiToWsgi`` it builds then answers a GET of
``/`` through ``wsgiref.validate.validator`` without a server error. The first
example of docs/asgi_to_wsgi.md is ``service.py``; later examples import from it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from wsgiref.validate import validator

import pytest
from werkzeug.test import Client

from bridge import AsgiToWsgi
from tests.docs_blocks import page_blocks

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["docs/asgi_to_wsgi.md", "docs/migrating_asgi_to_wsgi.md", "README.md"]


EXAMPLES = [
    pytest.param(block, id=f"{page}-{index}")
    for page in PAGES
    for index, block in enumerate(page_blocks(page))
    if "AsgiToWsgi" in block
]


@pytest.fixture
def service_module() -> Iterator[None]:
    """``import service`` in the examples: the page's first example, as a module."""
    module = types.ModuleType("service")
    exec(compile(page_blocks(PAGES[0])[0], "service.py", "exec"), module.__dict__)
    sys.modules["service"] = module
    yield
    del sys.modules["service"]
    module.application.close()


def adapters_in(namespace: dict[str, Any]) -> list[AsgiToWsgi]:
    """The AsgiToWsgi an example built: top-level names, and mounts of a dispatcher."""
    found: list[AsgiToWsgi] = []
    for value in namespace.values():
        mounts = getattr(getattr(value, "wsgi_app", None), "mounts", {})
        found.extend(app for app in [value, *mounts.values()] if isinstance(app, AsgiToWsgi))
    return found


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.usefixtures("service_module")
@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs_and_serves(code: str) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code, "<docs>", "exec"), namespace)
    adapters = adapters_in(namespace)
    application = namespace.get("application")
    assert adapters
    try:
        targets = [application] if application is not None else adapters
        for target in targets:
            client = Client(validator(cast("WSGIApplication", target)))
            response = client.get("/", buffered=True)
            assert response.status_code < 500, response.data
        if "DispatcherMiddleware" in code:  # the mounted recipe: FastAPI under /api
            site = Client(validator(cast("WSGIApplication", application)))
            mounted = site.get("/api/health", buffered=True)
            assert mounted.json == {"status": "ok"}
    finally:
        for adapter in adapters:
            adapter.close()
