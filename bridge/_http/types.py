"""Type aliases for the WSGI side (PEP 3333); the ASGI side uses ``asgiref.typing``."""

from __future__ import annotations

import wsgiref.types
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeAlias

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
Environ: TypeAlias = dict[str, Any]
WsgiHeaders: TypeAlias = list[tuple[str, str]]
WriteCallable: TypeAlias = Callable[[bytes], object]


# typeshed's protocol, so a bridge WSGI app is accepted wherever servers' stubs
# (waitress, gunicorn) and user code annotate with wsgiref.types.
StartResponse: TypeAlias = wsgiref.types.StartResponse


WsgiApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
