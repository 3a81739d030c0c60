"""A hand-driven ASGI exchange: scripted ``receive()``, recorded ``send()``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import anyio

Message = dict[str, Any]


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    root_path: str = "",
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": query_string,
        "root_path": root_path,
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": extensions or {},
    }


class Exchange:
    """Feeds ``incoming`` to the app, then (optionally) ``http.disconnect``; records sends.

    ``hold_disconnect``: after the body, ``receive()`` blocks until ``disconnect()``
    is called (a connected client), instead of returning ``http.disconnect`` at once.
    """

    def __init__(
        self,
        incoming: Sequence[Message] = ({"type": "http.request", "body": b""},),
        *,
        on_send: Callable[[Message], Awaitable[None]] | None = None,
    ) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []
        self.on_send = on_send
        self.gone = anyio.Event()

    def disconnect(self) -> None:
        self.gone.set()

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        message = dict(message)
        self.sent.append(message)
        if self.on_send is not None:
            await self.on_send(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    @property
    def complete(self) -> bool:
        last = self.sent[-1] if self.sent else None
        return last is not None and (
            last["type"] == "http.response.pathsend"
            or (last["type"] == "http.response.body" and not last.get("more_body", False))
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return list(starts[0]["headers"]) if starts else []
