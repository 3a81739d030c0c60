"""The Python examples of the CORS, TrustedHost, HTTPSRedirect, RequestId and Compression
pages run as written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.docs_blocks import page_blocks

PAGES = [
    "docs/middleware/trusted-host.md",
    "docs/middleware/https-redirect.md",
    "docs/middleware/cors.md",
    "docs/middleware/request-id.md",
    "docs/middleware/compression.md",
]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run_in_order(page: str) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    found = page_blocks(page)
    assert found, page
    for code in found:
        exec(compile(code, page, "exec"), namespace)
