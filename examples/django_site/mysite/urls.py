from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]

from mysite import views

urlpatterns = [
    path("", views.index),
    path("async-visits", views.async_visits),
    path("sync-report", views.sync_report),
]
