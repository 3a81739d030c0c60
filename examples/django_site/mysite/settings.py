"""Settings of the example project: one app (``mysite``), SQLite, no Django middleware."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["mysite"]
# bridge's middleware wraps the whole application in asgi.py and wsgi.py instead.
MIDDLEWARE: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(Path(tempfile.gettempdir()) / "mysite.sqlite3")),
        "OPTIONS": {"timeout": 30},  # several worker threads write: wait for the lock
    }
}
