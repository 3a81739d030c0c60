"""WSGI entry point: ``gunicorn mysite.wsgi:application`` (or waitress, uWSGI, mod_wsgi)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

from mysite.stack import wrap

application = wrap(get_wsgi_application())
