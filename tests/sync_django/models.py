from __future__ import annotations

from django.db import models  # type: ignore[import-untyped]


class Item(models.Model):  # type: ignore[misc]
    name = models.CharField(max_length=100)
    owner_thread = models.BigIntegerField()
