from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sync_django.settings")

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

application = get_wsgi_application()
