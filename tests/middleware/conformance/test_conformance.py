"""Runs every case from cases_*.py under WSGI and under ASGI on asyncio and trio."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.testing import FakeClock, Result, call_asgi, call_wsgi

from . import AsgiCase, Case, Step

_PACKAGE = __name__.rpartition(".")[0]


def _collect(attribute: str) -> list[Any]:
    found: list[Any] = []
    folder = str(Path(__file__).parent)
    for module in sorted(pkgutil.iter_modules([folder]), key=lambda m: m.name):
        if module.name.startswith("cases_"):
            imported = importlib.import_module(f"{_PACKAGE}.{module.name}")
            found.extend(getattr(imported, attribute, ()))
    return found


CASES: list[Case] = _collect("CASES")
ASGI_CASES: list[AsgiCase] = _collect("ASGI_CASES")


def _run(case: Case, interface: str, backend: str) -> list[Result]:
    clock = FakeClock()
    inner = case.inner.wsgi() if interface == "wsgi" else case.inner.asgi()
    app = case.build(inner, clock)
    results = []
    for step in case.steps:
        clock.advance(step.advance)
        if interface == "wsgi":
            results.append(call_wsgi(app, step.request))
        else:
            results.append(call_asgi(app, step.request, backend=backend))
    return results


def _lowered(lines: Any) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in lines]


def _same_but_case(result: Result) -> Result:
    """``result`` with lowercase header names: a WSGI server gets the names a middleware
    sets in their configured case, an ASGI server lowercase (tests/middleware/
    test_header_spelling.py checks the spellings); everything else must be identical."""
    return dataclasses.replace(result, headers=_lowered(result.headers))


def _check(step: Step, result: Result) -> None:
    if step.status is not None:
        assert result.status == step.status, result
    lines = _lowered(result.headers)
    if step.headers is not None:
        assert lines == _lowered(step.headers), result
    for line in _lowered(step.has_headers):
        assert line in lines, (line, result.headers)
    for name in step.lacks_headers:
        assert result.header(name) is None, (name, result.headers)
    if step.body is not None:
        assert result.body == step.body, result
    assert (result.error is not None) == step.error, result
    if step.seen is not None:
        step.seen(result.seen)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case_is_identical_under_wsgi_and_asgi(
    case: Case, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    wsgi = _run(case, "wsgi", anyio_backend[0])
    asgi = _run(case, "asgi", anyio_backend[0])
    assert [_same_but_case(r) for r in wsgi] == [_same_but_case(r) for r in asgi]
    for step, result in zip(case.steps, wsgi, strict=True):
        _check(step, result)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ASGI_CASES])
def test_asgi_only_case(case: AsgiCase, anyio_backend: tuple[str, dict[str, object]]) -> None:
    from bridge.testing import InnerApp

    app = case.build(InnerApp().asgi())
    anyio.run(case.run, app, backend=anyio_backend[0])


def test_the_table_has_cases() -> None:
    assert len(CASES) >= 10
    assert ASGI_CASES
