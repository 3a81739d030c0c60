"""Every Python block of every docs page (and of README.md) runs as printed.

A page's blocks run in order in one namespace, in a fresh interpreter, as a reader
copying them one after the other would run them; the markers for the few blocks that
cannot run that way are described in tests/docs_blocks.py. Pages with their own docs
tests (which also check what the examples' apps answer) run here too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.docs_blocks import docs_pages, page_examples

PAGES = [page for page in docs_pages() if page_examples(page)]


def test_every_page_is_found() -> None:
    assert "README.md" in PAGES
    assert "docs/index.md" in PAGES
    assert len(PAGES) >= 15


@pytest.mark.parametrize("page", docs_pages())
def test_markers_are_well_formed(page: str) -> None:
    for example in page_examples(page):
        example.check()


def test_skipped_blocks_are_few() -> None:
    """Skipping is for blocks that cannot run here, not for blocks that are hard to run."""
    examples = [example for page in PAGES for example in page_examples(page)]
    skipped = [f"{e.page}:{e.line}" for e in examples if e.directive == "skip"]
    assert len(skipped) * 10 <= len(examples), skipped


@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", PAGES)
def test_page_blocks_run_in_order(page: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-W", "error", "-m", "tests.docs_run", str(ROOT / page)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for example in page_examples(page):
        if example.runs_elsewhere:
            assert example.included is not None
            assert (ROOT / example.included).is_file(), example.included
    expected = sum(1 for example in page_examples(page) if example.runs_here)
    assert f"\n{expected} blocks ran\n" in f"\n{result.stdout}"
