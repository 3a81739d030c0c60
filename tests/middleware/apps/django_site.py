"""A one-module Django 5.2 project; asgi.py / wsgi.py style entry points below.

Imported only by the server processes tests/middleware/test_servers.py starts (gunicorn,
waitress, uvicorn), so, like a real project's settings module, it configures Django
itself; in-process tests share tests/apps/django_settings.py instead.
"""

from __future__ import annotations

from typing import Any

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "example.com", "localhost"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]


def index(request: HttpRequest) -> JsonResponse:
    scope = getattr(request, "scope", None)
    nonce = scope.get("bridge.csp_nonce") if scope else request.META.get("bridge.csp_nonce")
    return JsonResponse(
        {
            "client": request.META.get("REMOTE_ADDR"),
            "scheme": request.scheme,
            "host": request.get_host(),
            "script_name": request.META.get("SCRIPT_NAME", ""),
            "url": request.build_absolute_uri(),
            "nonce": nonce,
        }
    )


urlpatterns: list[Any] = [path("", index)]
