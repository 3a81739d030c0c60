"""The Python examples of a docs page, for the tests that run them.

Every ```python block of every page under docs/ (and of README.md) runs:
tests/test_docs_pages.py executes a page's blocks in order, in one namespace, in a fresh
interpreter (``python -m tests.docs_run PAGE``). A block that cannot run that way says so
on the line just above its fence, in an HTML comment the rendered page does not show:

``<!-- docs-test: skip REASON -->``
    not run; REASON says why (e.g. the "before" half of a migration needs a library
    the project does not depend on). Use sparingly: prefer an example that runs.
``<!-- docs-test: module NAME -->``
    saved as ``NAME.py`` (and run by the first import of it), so that later blocks can
    ``import NAME`` as the page tells the reader to.
``<!-- docs-test: app=GIVEN -->``
    runs with ``app`` bound to a fresh GIVEN, for a line that continues "your app".

Blocks may use, without defining them, the names of :data:`GIVEN_NAMES` (apps the reader
already has), and may import the example Django project's ``mysite`` package
(examples/django_site is on ``sys.path``). A line ``--8<-- "path"`` (pymdownx.snippets) is
replaced by that file; a block that is nothing but one file of examples/ is not run here,
because tests/test_examples.py serves that example and sends it requests.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

__all__ = ("GIVEN_NAMES", "Example", "docs_pages", "page_blocks", "page_examples", "python_blocks")

_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_FENCE = re.compile(
    r"(?:^<!-- docs-test: (?P<marker>[^\n]*?) -->\n)?"
    r"^(?P<indent>[ ]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ ]*$",
    re.DOTALL | re.MULTILINE,
)
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$', re.MULTILINE)

#: Names a block may use without defining them: apps the reader already has.
GIVEN_NAMES = ("wsgi_app", "asgi_app", "flask_app", "starlette_app", "get_asgi_application")

_DIRECTIVES = ("skip", "module", "app")


@dataclass(frozen=True)
class Example:
    """One ```python block of a page, with its docs-test marker (if any)."""

    page: str
    line: int
    code: str
    marker: str | None
    included: str | None = None

    @property
    def runs_elsewhere(self) -> bool:
        """Whether the block is one file of examples/ (run by tests/test_examples.py)."""
        return self.included is not None and self.included.startswith("examples/")

    @property
    def runs_here(self) -> bool:
        """Whether the docs runner executes this block."""
        return self.directive not in ("skip", "module") and not self.runs_elsewhere

    @property
    def directive(self) -> str | None:
        """``skip``, ``module``, ``app`` or ``None``."""
        if self.marker is None:
            return None
        return re.split(r"[ =]", self.marker, maxsplit=1)[0]

    @property
    def argument(self) -> str:
        """What follows the directive: the reason, the module name or the given app."""
        assert self.marker is not None
        return re.split(r"[ =]", self.marker, maxsplit=1)[1].strip()

    def check(self) -> None:
        """Raise ``ValueError`` naming the page and line for a marker the runner cannot honour."""
        where = f"{self.page}:{self.line}"
        if self.marker is None:
            return
        if self.directive not in _DIRECTIVES or not re.search(r"[ =]\S", self.marker):
            raise ValueError(
                f"{where}: unknown docs-test marker {self.marker!r}; use 'skip REASON', "
                "'module NAME' or 'app=GIVEN'"
            )
        if self.directive == "skip" and len(self.argument.split()) < 3:
            raise ValueError(f"{where}: a skipped block needs a reason of a few words")
        if self.directive == "module" and not self.argument.isidentifier():
            raise ValueError(f"{where}: module name {self.argument!r} is not an identifier")
        if self.directive == "app" and self.argument not in GIVEN_NAMES:
            raise ValueError(f"{where}: app={self.argument} is not one of {GIVEN_NAMES}")


def python_blocks(text: str) -> list[str]:
    """The code of each fenced ```python block of ``text``, in order."""
    return _PYTHON_BLOCK.findall(text)


def page_blocks(page: str | Path) -> list[str]:
    """The Python blocks of ``page`` (a path relative to the repository root, or absolute)."""
    return python_blocks((ROOT / page).read_text(encoding="utf-8"))


def _expand_snippets(code: str) -> str:
    return _SNIPPET.sub(lambda m: (ROOT / m["path"]).read_text(encoding="utf-8"), code)


def _only_snippet(code: str) -> str | None:
    match = _SNIPPET.fullmatch(code.strip())
    return None if match is None else match["path"]


def page_examples(page: str | Path) -> list[Example]:
    """Every ```python block of ``page`` (indented ones dedented, snippets expanded)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    name = Path(page).resolve().relative_to(ROOT).as_posix()
    return [
        Example(
            page=name,
            line=text.count("\n", 0, match.start("code")),
            code=_expand_snippets(textwrap.dedent(match["code"])),
            marker=match["marker"],
            included=_only_snippet(textwrap.dedent(match["code"])),
        )
        for match in _FENCE.finditer(text)
    ]


def docs_pages() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    pages = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").rglob("*.md"))
    return ["README.md", *pages]
