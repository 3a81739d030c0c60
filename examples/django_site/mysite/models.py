"""One table, so that the views have blocking ORM calls to make."""

from __future__ import annotations

from django.db import models  # type: ignore[import-untyped]


class Visit(models.Model):  # type: ignore[misc]
    path = models.CharField(max_length=200)
    at = models.DateTimeField(auto_now_add=True)
