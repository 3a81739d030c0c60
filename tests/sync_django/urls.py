from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]

from . import views

urlpatterns = [
    path("async", views.async_view),
    path("sync", views.sync_view),
]
