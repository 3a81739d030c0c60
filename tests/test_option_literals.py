"""The ``Literal`` option types users annotate with name exactly what the middleware accept."""

from __future__ import annotations

from typing import get_args

from bridge.middleware.proxy_headers._middleware import ProxyUse
from bridge.middleware.proxy_headers._plan import X_NAMES
from bridge.middleware.security_headers import PRESETS, SecurityPreset
from bridge.ratelimit._algorithms import ALGORITHMS
from bridge.ratelimit._middleware import AlgorithmName


def test_algorithm_names_are_the_algorithms() -> None:
    assert set(get_args(AlgorithmName)) == set(ALGORITHMS)


def test_security_presets_are_the_presets() -> None:
    assert set(get_args(SecurityPreset)) == set(PRESETS)


def test_proxy_uses_are_the_forwarded_values() -> None:
    assert set(get_args(ProxyUse)) == set(X_NAMES)
