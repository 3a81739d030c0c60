"""The examples in docs/ratelimit.md run, and answer with the headers the page shows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bridge.testing import Request, call_wsgi
from tests.docs_blocks import page_examples, python_blocks

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "ratelimit.md"


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]


def test_quick_start_answers_as_shown() -> None:
    text = DOC.read_text()
    namespace: dict[str, Any] = {"__name__": "docs_ratelimit"}
    exec(compile(python_blocks(text)[0], str(DOC), "exec"), namespace)
    result = call_wsgi(namespace["app"], Request())
    shown = re.search(r"```console\n(.*?)```", text, re.DOTALL)
    assert shown is not None
    for name in (b"RateLimit-Policy", b"RateLimit"):
        value = result.header(name)
        assert value is not None
        assert f"{name.decode()}: {value.decode()}" in shown.group(1)


def test_configuration_examples_build() -> None:
    """Every example before the migration guides runs against a plain WSGI app."""
    text = DOC.read_text().split("## Migrating")[0]
    skipped = {e.code for e in page_examples(DOC) if (e.marker or "").startswith("skip")}
    for block in python_blocks(text)[1:]:
        if "class MyStore" in block or block in skipped:
            continue  # an interface sketch, not a store; a block the page marks as skipped
        namespace: dict[str, Any] = {"__name__": "docs_ratelimit", "app": hello}
        exec(compile(block, str(DOC), "exec"), namespace)
