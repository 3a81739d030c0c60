"""Settings for the Django test project; the SQLite file comes from BRIDGE_DJANGO_DB."""

from __future__ import annotations

import os

SECRET_KEY = "bridge-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.sync_django.urls"
INSTALLED_APPS = ["tests.sync_django"]
MIDDLEWARE: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BRIDGE_DJANGO_DB", ":memory:"),
        # Concurrent requests write from several threads: wait for the lock, never fail.
        "OPTIONS": {"timeout": 30},
    }
}
