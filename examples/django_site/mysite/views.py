"""Views that cross between sync and async code with bridge, in both directions.

Under ``asgi.py`` Django awaits async views on the event loop and runs sync views in a
thread; under ``wsgi.py`` it calls sync views directly and runs async views on a loop.
Either way the code below works unchanged.
"""

from __future__ import annotations

import anyio
from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]

from bridge import async_to_sync, sync_to_async
from mysite.models import Visit


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "hello": "from Django",
            "client": request.META.get("REMOTE_ADDR"),
            "scheme": request.scheme,
            "try": ["/async-visits", "/sync-report"],
        }
    )


def record_visit(path: str) -> int:
    """Blocking ORM calls: the number of visits of ``path`` so far, this one included."""
    Visit.objects.create(path=path)
    count: int = Visit.objects.filter(path=path).count()
    return count


async def async_visits(request: HttpRequest) -> JsonResponse:
    """An async view: the ORM runs through ``sync_to_async``.

    Thread-sensitive (the default): every ORM call of the request runs in the same
    thread, so Django's per-thread database connection is reused, not reopened.
    """
    visits = await sync_to_async(record_visit)(request.path)
    return JsonResponse({"visits": visits})


async def fetch_prices() -> dict[str, float]:
    """Async code a sync view needs, e.g. an async HTTP client's calls."""
    await anyio.sleep(0.01)
    return {"EUR": 1.0, "USD": 1.08}


def sync_report(request: HttpRequest) -> JsonResponse:
    """A sync view: async code runs through ``async_to_sync``.

    Under ASGI it runs on the server's event loop; under WSGI, on bridge's one background
    loop (no new loop per call).
    """
    prices = async_to_sync(fetch_prices)()
    return JsonResponse({"prices": prices, "visits": record_visit(request.path)})
