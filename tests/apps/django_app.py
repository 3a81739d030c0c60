"""A real Django 5.2 app configured in-process: ``uvicorn tests.apps.django_app:asgi``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

from tests.apps import django_settings  # noqa: F401  # isort: skip - configures Django first

# These imports need configured settings.
from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]
from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # type: ignore[import-untyped]

from bridge import WsgiToAsgi


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django")


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def request_info(request: HttpRequest) -> dict[str, Any]:
    """What the tests check of how Django saw a request (shared with the ASGI app)."""
    return {
        "path": request.path,
        "path_info": request.path_info,
        "script_name": request.META["SCRIPT_NAME"],
        "query": request.GET.dict(),
        "host": request.get_host(),
        "x_user": request.headers.get("X-User"),
    }


def info(request: HttpRequest) -> JsonResponse:
    return JsonResponse(request_info(request))


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def lines() -> Iterator[bytes]:
        for i in range(10):
            yield f"line {i}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("info", info),
    path("stream", stream),
]

validated = validator(WSGIHandler())
asgi = WsgiToAsgi(validated)
