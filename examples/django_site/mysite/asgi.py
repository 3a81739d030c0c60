"""ASGI entry point: ``uvicorn mysite.asgi:application`` (or hypercorn, daphne, granian)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

from mysite.stack import wrap

application = wrap(get_asgi_application())
