"""What the five-middleware server apps share: their options and the gated stream.

The stream's second half is produced only once the client has created the gate
file, which it does after decoding the first half: so the test passes only when
each chunk reaches the client compressed and flushed before the app makes the next.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

SITE = "https://site.test"
CORS_OPTIONS: dict[str, Any] = {"allow_origins": [SITE], "allow_methods": ["GET", "POST"]}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
BIG = b"".join(b"line %05d of a compressible body\n" % n for n in range(2000))
FIRST = b"first half " * 300
SECOND = b"second half " * 300
TIMED_OUT = b"the client never opened the gate"
GATE_SECONDS = 30.0


def redirected(head: Any) -> bool:
    """Only /secure... is redirected to https (every other path is exempt)."""
    return not str(head.path).startswith("/secure")


def gate_open(gate: str) -> bool:
    return Path(gate).exists()


def gate_deadline() -> float:
    return time.monotonic() + GATE_SECONDS
