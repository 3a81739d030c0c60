"""Checks for issue 13's closing note that no earlier test made in the issue's own terms.

* item 6: ``RequestBuffering(AsgiToWsgi(app))`` keeps its cap for a body the WSGI server
  delivers with neither Content-Length nor Transfer-Encoding (``wsgi.input_terminated``).
"""

from __future__ import annotations

import io
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from bridge import AsgiToWsgi, RequestBuffering


def _unframed_environ(body: bytes) -> dict[str, Any]:
    """An HTTP/1.1 POST with no framing header whose body the server still delivers."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/echo",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    return environ


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    iterable = validator(app)(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        iterable.close()
    return statuses[0], body


def _echo_counting(received: list[int]) -> Any:
    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        received.append(total)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"%d" % total})

    return echo


def test_unframed_body_over_the_cap_never_reaches_an_asgi_app_behind_asgi_to_wsgi() -> None:
    received: list[int] = []
    with AsgiToWsgi(_echo_counting(received)) as adapter:
        capped = RequestBuffering(adapter, max_body_size=1000)
        status, body = _call(capped, _unframed_environ(b"x" * 5000))
        assert status.startswith("413"), (status, body)
        assert received == []  # the app never ran: the cap held before it
        status, body = _call(capped, _unframed_environ(b"y" * 600))
    assert (status, body) == ("200 OK", b"600")
    assert received == [600]
