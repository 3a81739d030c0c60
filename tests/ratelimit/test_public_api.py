"""The public names of rate limiting: re-exported, documented, redis imported lazily."""

from __future__ import annotations

import subprocess
import sys

import bridge
import bridge.ratelimit
from bridge.ratelimit.redis import RedisStore
from tests.conftest import ROOT


def test_all_names_resolve_and_have_docstrings() -> None:
    for name in bridge.ratelimit.__all__:
        value = getattr(bridge.ratelimit, name)
        if callable(value):
            assert value.__doc__, name
    for name in ("RateLimit", "ConcurrencyLimit", "MemoryStore", "RedisStore"):
        assert name in bridge.__all__
        assert getattr(bridge, name) is getattr(bridge.ratelimit, name)
    assert bridge.RedisStore is RedisStore


def test_importing_bridge_does_not_import_redis() -> None:
    code = "import sys, bridge; assert 'redis' not in sys.modules; bridge.RedisStore; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
