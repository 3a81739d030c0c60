"""A one-file Django project served through its ASGI handler behind AsgiToWsgi.

Settings are configured in-process; ``tests.apps.django_app:application`` is the WSGI app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bridge-tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

from bridge import AsgiToWsgi


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django", content_type="text/plain")


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def info(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse(
        {
            "path": request.path,
            "script_name": request.META.get("SCRIPT_NAME"),
            "path_info": request.path_info,
            "method": request.method,
            "query": request.GET.dict(),
            "header": request.headers.get("X-Thing"),
        }
    )


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"chunk {number}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("hello", hello),
    path("echo", echo),
    path("info/<str:name>", info),
    path("stream", stream),
]

asgi_app = get_asgi_application()
application = AsgiToWsgi(asgi_app)
