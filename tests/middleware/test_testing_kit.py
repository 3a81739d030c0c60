"""bridge.testing presents a body cut short the same way under both interfaces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from bridge._http.types import Environ, StartResponse
from bridge.testing import Request, call_asgi, call_wsgi

CUT_SHORT = Request(method="POST", body=[b"one", b"two"], chunked=True, disconnect_after=1)


def wsgi_reader(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    try:
        body = b""
        while chunk := environ["wsgi.input"].read(65536):  # validator: read(size) only
            body += chunk
        outcome = b"complete:" + body
    except OSError:
        outcome = b"cut short"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [outcome]


async def asgi_reader(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    outcome = b""
    while not outcome:
        message = await receive()
        if message["type"] == "http.disconnect":
            outcome = b"cut short"
        else:
            body += message.get("body", b"")
            if not message.get("more_body", False):
                outcome = b"complete:" + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": outcome})


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_disconnect_mid_chunked_body_is_not_a_complete_body(backend: str) -> None:
    wsgi = call_wsgi(wsgi_reader, CUT_SHORT)
    asgi = call_asgi(asgi_reader, CUT_SHORT, backend=backend)
    assert wsgi.body == asgi.body == b"cut short"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_whole_chunked_body_is_complete_under_both(backend: str) -> None:
    whole = Request(method="POST", body=[b"one", b"two"], chunked=True)
    wsgi = call_wsgi(wsgi_reader, whole)
    asgi = call_asgi(asgi_reader, whole, backend=backend)
    assert wsgi.body == asgi.body == b"complete:onetwo"
