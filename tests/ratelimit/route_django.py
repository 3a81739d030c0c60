"""A one-module Django 5.2 project with route-level limits: ``@limit`` on views.

``wsgi_application`` / ``asgi_application`` wrap Django's handlers in
``RateLimit(..., routes=True)``; served by gunicorn and uvicorn. A Django middleware (the
app's auth) sets ``request.user`` from a header a proxy would have verified, so the
``/user`` route keys on ``request.user`` with ``user_key()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=[f"{__name__}.HeaderAuth"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]
from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]
from django.utils.decorators import method_decorator  # type: ignore[import-untyped]
from django.views import View  # type: ignore[import-untyped]

from bridge.ratelimit import LimitDecision, limit, user_key

from .route_common import CUSTOM_429, by_api_key, plan_limit, wrap


class User:
    """What Django's auth would attach: an authenticated user with a primary key."""

    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class HeaderAuth:
    """A sync Django middleware (Django adapts it under ASGI) standing in for auth."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        name = request.headers.get("x-user")
        if name:
            request.user = User(name)
        return self.get_response(request)


def left(request: HttpRequest) -> HttpResponse:
    scope = getattr(request, "scope", None)
    env = scope if scope is not None else request.META
    decision: LimitDecision | None = env.get("bridge.ratelimit")
    text = "unlimited" if decision is None else f"left {decision.remaining}"
    return HttpResponse(text, content_type="text/plain")


@limit("2/minute")
def login(request: HttpRequest) -> HttpResponse:
    return left(request)


@limit("2/minute")
async def other(request: HttpRequest) -> HttpResponse:
    return left(request)


@limit("2/minute")
def both(request: HttpRequest) -> HttpResponse:
    return left(request)


@limit(plan_limit, key=by_api_key)
def plan(request: HttpRequest) -> HttpResponse:
    return left(request)


@limit("1/minute", key=user_key())
def user(request: HttpRequest) -> HttpResponse:
    return left(request)


@limit("1/minute", rejection=CUSTOM_429)
async def custom(request: HttpRequest) -> HttpResponse:
    return left(request)


class Report(View):  # type: ignore[misc]
    """A class-based view: the decorator goes on through ``method_decorator``."""

    @method_decorator(limit("1/minute", name="report"))  # type: ignore[untyped-decorator]
    def get(self, request: HttpRequest) -> HttpResponse:
        return left(request)


class AsyncReport(View):  # type: ignore[misc]
    """An async class-based view (Django wants all of a view's handlers of one kind)."""

    @method_decorator(limit("1/minute", name="async-report"))  # type: ignore[untyped-decorator]
    async def get(self, request: HttpRequest) -> HttpResponse:
        return left(request)


def free(request: HttpRequest) -> HttpResponse:
    return HttpResponse("free", content_type="text/plain")


urlpatterns: list[Any] = [
    path(view.__name__, view) for view in (login, other, both, plan, user, custom, free)
]
urlpatterns += [path("report", Report.as_view()), path("async-report", AsyncReport.as_view())]

wsgi_application = wrap(get_wsgi_application())
asgi_application = wrap(get_asgi_application())
