"""Every runnable example in docs/threads.md and docs/migrating_sync.md runs as printed.

Each block runs in a fresh interpreter (the examples call ``anyio.run`` at module level).
The Django view in the migration page needs a project around it: the Django tests cover it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.docs_blocks import page_blocks

DOCS = ROOT / "docs"


def examples() -> list[object]:
    found: list[object] = []
    for page in ("threads.md", "migrating_sync.md"):
        blocks = page_blocks(DOCS / page)
        for index, block in enumerate(blocks):
            if "django" not in block:
                found.append(pytest.param(block, id=f"{page}-{index}"))
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("source", examples())
def test_documented_example_runs(source: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(source)
    result = subprocess.run(
        [PYTHON, "-W", "error", str(script)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
