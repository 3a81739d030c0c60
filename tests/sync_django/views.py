"""Views that cross the sync/async boundary with bridge, both ways.

Every response reports the threads it ran in, so the test can check affinity: Django's
database connections are per thread, so a request whose ORM calls hop threads would open
several connections (and, with SQLite, see inconsistent transactions).
"""

from __future__ import annotations

import asyncio
import threading

from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]

import bridge

from .models import Item


def create_item(name: str) -> Item:
    item: Item = Item.objects.create(name=name, owner_thread=threading.get_ident())
    return item


def count_named(name: str) -> tuple[int, int]:
    return Item.objects.filter(name=name).count(), threading.get_ident()


async def async_view(request: HttpRequest) -> JsonResponse:
    """An async view using the ORM through bridge.sync_to_async (thread-sensitive)."""
    name = request.GET["name"]
    item = await bridge.sync_to_async(create_item)(name)
    await asyncio.sleep(0.001)  # let other requests interleave
    count, count_thread = await bridge.sync_to_async(count_named)(name)
    return JsonResponse(
        {
            "id": item.pk,
            "name": item.name,
            "count": count,
            "same_thread": item.owner_thread == count_thread,
        }
    )


async def double_later(value: int) -> tuple[int, int, int]:
    await asyncio.sleep(0.001)
    count, orm_thread = await bridge.sync_to_async(count_named)(f"n{value}")
    return 2 * value, count, orm_thread


def sync_view(request: HttpRequest) -> JsonResponse:
    """A sync view calling async code through bridge.async_to_sync; that code calls the ORM back."""
    value = int(request.GET["n"])
    create_item(f"n{value}")
    doubled, count, orm_thread = bridge.async_to_sync(double_later)(value)
    return JsonResponse(
        {"doubled": doubled, "count": count, "same_thread": orm_thread == threading.get_ident()}
    )
