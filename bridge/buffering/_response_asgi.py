"""Where ResponseBuffering's inline-flush threshold used to live (kept for importers).

ResponseBuffering runs on the middleware core; the threshold belongs to the
core's ASGI driver now (``bridge.middleware._drive.INLINE_FLUSH``).
"""

from __future__ import annotations

from bridge.middleware._drive import INLINE_FLUSH

__all__ = ("INLINE_FLUSH",)
