"""The Python examples of a docs page, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

__all__ = ("page_blocks", "python_blocks")

_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks(text: str) -> list[str]:
    """The code of each fenced ```python block of ``text``, in order."""
    return _PYTHON_BLOCK.findall(text)


def page_blocks(page: str | Path) -> list[str]:
    """The Python blocks of ``page`` (a path relative to the repository root, or absolute)."""
    return python_blocks((ROOT / page).read_text(encoding="utf-8"))
