"""The API reference (docs/reference/*.md) has an entry for every public name.

An entry is a mkdocstrings line ``::: dotted.path``; mkdocs renders the object's
docstring and signature there. Names exported both by ``bridge`` and by
``bridge.middleware`` or ``bridge.ratelimit`` (the same object) need one entry. The site
test builds the docs and checks that each entry was rendered, and that the site loads
nothing from elsewhere.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import bridge
import bridge.buffering
import bridge.middleware
import bridge.ratelimit
from tests.conftest import ROOT

REFERENCE = ROOT / "docs" / "reference"
_ENTRY = re.compile(r"^::: (?P<path>[\w.]+)\s*$", re.MULTILINE)
MODULES = (bridge, bridge.middleware, bridge.ratelimit, bridge.buffering)


def entries() -> dict[str, str]:
    """Each ``::: path`` of the reference pages, mapped to its page."""
    found: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for match in _ENTRY.finditer(page.read_text(encoding="utf-8")):
            assert match["path"] not in found, f"{match['path']} is documented twice"
            found[match["path"]] = page.name
    return found


def resolve(path: str) -> object:
    """The object at dotted ``path``: the longest importable module, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            target = getattr(target, name)
        return target
    raise AssertionError(f"{path} does not import")


def test_every_public_name_has_an_entry() -> None:
    documented = entries()
    objects = [resolve(path) for path in documented]
    missing = [
        f"{module.__name__}.{name}"
        for module in MODULES
        for name in module.__all__
        if f"{module.__name__}.{name}" not in documented
        and not any(getattr(module, name) is target for target in objects)
    ]
    assert not missing, (
        f"no API reference entry for {missing}: add a line '::: <dotted.path>' to the "
        "docs/reference/ page of its kind"
    )


def test_every_entry_is_public() -> None:
    """No entry documents a private or removed name (it would go stale unseen)."""
    public = {id(getattr(module, name)) for module in MODULES for name in module.__all__}
    for path, page in entries().items():
        found = resolve(path)
        public_module = isinstance(found, types.ModuleType) and not any(
            part.startswith("_") for part in path.split(".")
        )
        assert public_module or id(found) in public, f"{page}: {path} is not in an __all__"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocstrings_handlers.python", reason="needs the docs extra")
    pytest.importorskip("material", reason="needs the docs extra")
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return site_dir


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_site_renders_every_entry(site: Path) -> None:
    for path, page in entries().items():
        folder = site / "reference"
        if page != "index.md":
            folder /= page.removesuffix(".md")
        html = (folder / "index.html").read_text(encoding="utf-8")
        assert f'id="{path}"' in html, f"{path} was not rendered on reference/{page}"


_EXTERNAL_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\""
    r"|@import\s+url\((?:https?:)?//|url\((?:['\"])?(?:https?:)?//",
    re.IGNORECASE,
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_site_loads_nothing_from_elsewhere(site: Path) -> None:
    """Scripts, styles, fonts and images come from the site: it works offline, highlighted."""
    found = {
        str(path.relative_to(site)): match.group(0)
        for path in site.rglob("*")
        if path.suffix in (".html", ".css")
        for match in [_EXTERNAL_ASSET.search(path.read_text(encoding="utf-8"))]
        if match is not None
    }
    assert not found, found
    guide = (site / "guides" / "mount-legacy-app" / "index.html").read_text()
    assert '<span class="kn">from</span>' in guide  # highlighted when built, by Pygments
    assert (site / "search" / "search_index.json").is_file()


def test_reference_pages_are_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in REFERENCE.glob("*.md"):
        assert f"reference/{page.name}" in nav
