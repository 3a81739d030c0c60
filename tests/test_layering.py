"""The package's layers are its folders, and imports only go down.

``_http`` (sans-IO HTTP rules) imports nothing of bridge; ``_loop`` (threads and
event loops) only ``_http``; the adapters and the middleware import those two
layers and never each other's private modules. The public façades at the root
may import any public name. The table below is the whole rule: a new module that
breaks it fails here with the import that broke it.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import bridge

PACKAGE = pathlib.Path(bridge.__file__).parent

# layer -> the layers its modules may import (their own layer is always allowed)
ALLOWED: dict[str, frozenset[str]] = {
    "_http": frozenset(),
    "_loop": frozenset({"_http"}),
    "wsgi_to_asgi": frozenset({"_http", "_loop"}),
    "asgi_to_wsgi": frozenset({"_http", "_loop"}),
    "middleware": frozenset({"_http", "_loop"}),
    # built on the middleware core's public API (bridge.middleware), not its _core
    "buffering": frozenset({"_http", "_loop", "middleware"}),
    "ratelimit": frozenset({"_http", "_loop", "middleware"}),
    "sync": frozenset({"_http", "_loop"}),
    # public façades over the middleware's public modules
    "values": frozenset({"middleware"}),
    # bridge.types re-exports, from wherever they are defined, the types users annotate with
    "types": frozenset({"*"}),
    # the façades: bridge/__init__.py and bridge/testing.py re-export or drive anything
    "__init__": frozenset({"*"}),
    "testing": frozenset({"*"}),
    "__about__": frozenset(),
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> str:
    parts = ("bridge", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, root: pathlib.Path) -> list[list[str]]:
    """The bridge modules ``path`` imports, one group per statement (relative ones resolved).

    ``from bridge._loop import portal`` may import the module ``bridge._loop.portal``:
    a group holds the module named, then each name as a possible submodule.
    """
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    groups = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            groups += [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            groups.append([base, *(f"{base}.{alias.name}" for alias in node.names)])
    return [group for group in groups if group[0] == "bridge" or group[0].startswith("bridge.")]


def _is_private_module(module: str) -> bool:
    return any(part.startswith("_") and part != "__init__" for part in module.split(".")[2:])


def _violation(importer: str, imported: str) -> str | None:
    layer, target = _layer(importer), _layer(imported)
    allowed = ALLOWED[layer]
    if imported == "bridge":
        return None if layer == "__init__" else f"{importer} imports the root package bridge"
    if "*" in allowed or target == layer:
        return None
    if target not in allowed:
        return f"{importer} ({layer}) imports {imported} ({target})"
    if target not in ("_http", "_loop") and _is_private_module(imported):
        return f"{importer} imports the private module {imported}"
    return None


def violations(root: pathlib.Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(path, root)
        for group in _imports(path, root):
            for imported in group:
                problem = _violation(importer, imported)
                if problem:
                    found.append(problem)
                    break
    return found


def test_every_layer_is_in_the_table() -> None:
    layers = {_layer(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert layers <= set(ALLOWED), f"add these to ALLOWED: {sorted(layers - set(ALLOWED))}"


def test_imports_only_go_down_the_layers() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        pytest.param(
            "middleware/_core/x.py",
            "from ...wsgi_to_asgi._request import X\n",
            "bridge.middleware._core.x (middleware) imports"
            " bridge.wsgi_to_asgi._request (wsgi_to_asgi)",
            id="sideways-relative",
        ),
        pytest.param(
            "_http/x.py",
            "from bridge._loop import portal\n",
            "bridge._http.x (_http) imports bridge._loop (_loop)",
            id="upward",
        ),
        pytest.param(
            "ratelimit/x.py",
            "from bridge.middleware._core.drive import logger\n",
            "bridge.ratelimit.x imports the private module bridge.middleware._core.drive",
            id="into-a-private-core",
        ),
        pytest.param("ratelimit/x.py", "from bridge.middleware import Response\n", None, id="ok"),
    ],
)
def test_the_checker_finds_a_broken_import(
    tmp_path: pathlib.Path, module: str, source: str, expected: str | None
) -> None:
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = violations(tmp_path)
    assert found == ([expected] if expected else [])


@pytest.mark.timeout(30)
def test_import_bridge_loads_no_test_helpers_frameworks_or_redis() -> None:
    code = (
        "import sys, bridge\n"
        "heavy = ['bridge.testing', 'redis', 'flask', 'django', 'starlette', 'httpx', 'pytest']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    assert loaded == ""
