"""Type aliases for the WSGI side (PEP 3333); the ASGI side uses ``asgiref.typing``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol, TypeAlias

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
Environ: TypeAlias = dict[str, Any]
WsgiHeaders: TypeAlias = list[tuple[str, str]]
WriteCallable: TypeAlias = Callable[[bytes], object]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: WsgiHeaders, exc_info: ExcInfo | None = ..., /
    ) -> WriteCallable: ...


WsgiApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
