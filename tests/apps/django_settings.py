"""The one in-process Django 5.2 configuration shared by the test apps under tests/apps.

Django allows one settings object per process, and either app module may be
imported first, so both import this module, which configures Django on import.
``tests.apps.django_asgi_app`` resolves its own URLs per request, so
ROOT_URLCONF names the WSGI app's module.
"""

from __future__ import annotations

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]


def configure() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ROOT_URLCONF="tests.apps.django_app",
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()


configure()
