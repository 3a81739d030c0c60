"""Construction errors raised where the server may hide them: logged once at ERROR.

Starlette and FastAPI build the middleware given to ``add_middleware()`` lazily, in
``build_middleware_stack()``, inside the first ASGI call: the lifespan startup event
under uvicorn. Under uvicorn's default ``--lifespan auto``, an exception raised there
is taken to mean "this app does not support lifespan": uvicorn logs ``ASGI 'lifespan'
protocol appears unsupported.`` at INFO (hidden by default) and drops the exception;
then every request fails with 500. So a bridge middleware whose construction fails
*while an event loop runs in this thread* (which never happens at import time, where a
misconfiguration raises to the user directly) also logs the error at ERROR, once per
class and message, before raising it as usual.

Invariant: the record of what was reported holds configuration errors only (never a
request's values), bounded by :data:`REPORTED_LIMIT`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Final

import sniffio

from bridge._http.logfields import EventLog

__all__ = ("loud_init", "report_construction_error")

log: Final = EventLog(logging.getLogger("bridge.middleware"), "middleware")

#: Distinct (class, message) pairs logged per process; later ones are not logged.
REPORTED_LIMIT: Final = 64
_reported: set[tuple[str, str]] = set()


def _in_event_loop() -> bool:
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


def report_construction_error(name: str, exc: BaseException) -> None:
    """Log ``exc``, raised building middleware ``name``, when built lazily in an event loop."""
    if getattr(exc, "_bridge_reported", False) or not _in_event_loop():
        return
    try:
        exc._bridge_reported = True  # type: ignore[attr-defined]  # nested __init__ wrappers
    except AttributeError:  # pragma: no cover - an exception type with __slots__
        pass
    key = (name, str(exc))
    if key in _reported or len(_reported) >= REPORTED_LIMIT:
        return
    _reported.add(key)
    log.error(
        "misconfigured",
        None,
        "%s: %s. It was built inside the server's event loop (e.g. by Starlette/FastAPI "
        "add_middleware() at the first lifespan event or request), where uvicorn's "
        "--lifespan auto reports it only as \"ASGI 'lifespan' protocol appears "
        'unsupported" and every request then fails with 500; fix the option above '
        "(uvicorn --lifespan on shows the traceback at startup)",
        type(exc).__name__,
        exc,
        middleware=name,
    )


def loud_init(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` (a middleware's ``__init__``), reporting what it raises (see above)."""

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except Exception as exc:
            report_construction_error(type(self).__name__, exc)
            raise

    __init__.__bridge_loud__ = True  # type: ignore[attr-defined]
    return __init__
