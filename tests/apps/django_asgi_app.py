"""A real Django 5.2 ASGI app (``ASGIHandler``) configured in-process, for AsgiToWsgi.

Django has one settings object per process (``tests.apps.django_settings``,
shared with the WsgiToAsgi tests' ``tests.apps.django_app``), so this handler
resolves its own URLs through ``request.urlconf``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from tests.apps import django_settings  # noqa: F401  # isort: skip - configures Django first

# These imports need configured settings.
from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]
from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # type: ignore[import-untyped]

from tests.apps.django_app import echo, request_info


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django ASGI")


def info(request: HttpRequest) -> JsonResponse:
    return JsonResponse({**request_info(request), "pid": os.getpid()})


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"async {request.method} {request.path}")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    # Under ASGI Django wants an async iterator (a sync one warns and is buffered).
    async def lines() -> AsyncIterator[bytes]:
        for number in range(10):
            yield f"line {number}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("info", info),
    path("async", async_view),
    path("stream", stream),
]


class _OwnUrls(ASGIHandler):  # type: ignore[misc]
    """Django's ASGI handler, resolving against this module's urlpatterns."""

    def create_request(self, scope: dict[str, Any], body_file: Any) -> Any:
        request, error = super().create_request(scope, body_file)
        if request is not None:
            request.urlconf = __name__
        return request, error


asgi = _OwnUrls()
