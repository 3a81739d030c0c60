"""Run one docs page's Python blocks in order: ``python -m tests.docs_run PAGE``.

Started by tests/test_docs_pages.py in a fresh interpreter whose working directory is
an empty temporary folder (``module NAME`` blocks are written there). The markers it
honours are described in tests/docs_blocks.py. Prints one line per block.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.docs_blocks import GIVEN_NAMES, page_examples


def _wsgi_app() -> Any:
    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return wsgi_app


def _asgi_app() -> Any:
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return asgi_app


def _flask_app() -> Any:
    from flask import Flask

    return Flask("docs_example")


def _starlette_app() -> Any:
    from starlette.applications import Starlette

    return Starlette()


GIVEN: dict[str, Callable[[], Any]] = {
    "wsgi_app": _wsgi_app,
    "asgi_app": _asgi_app,
    "flask_app": _flask_app,
    "starlette_app": _starlette_app,
    "get_asgi_application": lambda: _asgi_app,
}
assert tuple(GIVEN) == GIVEN_NAMES


def run_page(page: str) -> int:
    """Run ``page``'s blocks; the number of blocks run."""
    examples = page_examples(page)
    text = "\n".join(example.code for example in examples)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    namespace.update(
        {name: make() for name, make in GIVEN.items() if re.search(rf"\b{name}\b", text)}
    )
    ran = 0
    for example in examples:
        example.check()
        where = f"{example.page}:{example.line}"
        if example.directive == "skip":
            print(f"{where}: skipped ({example.argument})", flush=True)
            continue
        if example.runs_elsewhere:
            print(f"{where}: {example.included}, served by tests/test_examples.py", flush=True)
            continue
        if example.directive == "module":
            Path(f"{example.argument}.py").write_text(example.code, encoding="utf-8")
            print(f"{where}: saved as {example.argument}.py", flush=True)
            continue
        if example.directive == "app":
            namespace["app"] = GIVEN[example.argument]()
        exec(compile(example.code, where, "exec"), namespace)
        ran += 1
        print(f"{where}: ran", flush=True)
    return ran


if __name__ == "__main__":
    sys.path[:0] = [str(Path.cwd()), str(ROOT / "examples" / "django_site")]
    print(f"{run_page(sys.argv[1])} blocks ran", flush=True)
