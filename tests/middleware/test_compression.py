"""Compression: every coding decodes, each chunk is flushed as it comes, Starlette side by side,
configuration errors, bad input."""

from __future__ import annotations

import gzip
import logging
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import brotli  # type: ignore[import-untyped]
import pytest
import zstandard
from starlette.middleware.gzip import GZipMiddleware

from bridge import Compression
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

CHUNKS = [b"line %d " % n * 40 for n in range(20)]
WHOLE = b"".join(CHUNKS)


def _request(accept: bytes) -> Request:
    return Request(headers=[(b"host", b"t"), (b"accept-encoding", accept)])


def _streaming_decoder(coding: bytes) -> Callable[[bytes], bytes]:
    if coding == b"gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if coding == b"br":
        return brotli.Decompressor().process  # type: ignore[no-any-return]
    decoder = zstandard.ZstdDecompressor().decompressobj()
    # zstandard's decompressobj refuses any call after its frame ended, even an empty one
    return lambda data: decoder.decompress(data) if data else b""


@pytest.mark.parametrize("coding", [b"gzip", b"br", b"zstd"])
def test_every_coding_decodes_the_same_under_both_interfaces(
    coding: bytes, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    inner = InnerApp(body=CHUNKS)
    wsgi = call_wsgi(Compression(inner.wsgi()), _request(coding))
    asgi = call_asgi(Compression(inner.asgi()), _request(coding), backend=anyio_backend[0])
    assert wsgi == asgi
    assert wsgi.header(b"content-encoding") == coding
    assert _streaming_decoder(coding)(wsgi.body) == WHOLE
    assert len(wsgi.body) < len(WHOLE) / 5


@pytest.mark.parametrize("coding", [b"gzip", b"br", b"zstd"])
def test_each_asgi_chunk_decodes_as_soon_as_it_is_sent(
    coding: bytes, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    decode = _streaming_decoder(coding)
    decoded: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in CHUNKS:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            # the client has decoded everything sent so far: nothing is held back
            assert b"".join(decoded) == WHOLE[: len(b"".join(decoded))]
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def main() -> None:
        async def send(message: Any) -> None:
            if message["type"] == "http.response.body":
                decoded.append(decode(message.get("body", b"")))

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = dict(_request(coding).scope())
        await Compression(app)(scope, receive, send)

    anyio.run(main, backend=anyio_backend[0])
    sizes = [len(part) for part in decoded]
    assert sizes[: len(CHUNKS)] == [len(chunk) for chunk in CHUNKS]  # one chunk in, one out
    assert b"".join(decoded) == WHOLE


def test_each_wsgi_chunk_decodes_as_soon_as_the_server_gets_it() -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from CHUNKS

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "wsgi.url_scheme": "http",
    }
    decode = _streaming_decoder(b"gzip")
    body = Compression(app)(environ, lambda status, headers, exc_info=None: None)
    try:
        parts = [decode(chunk) for chunk in body]
    finally:
        body.close()
    assert [len(p) for p in parts[: len(CHUNKS)]] == [len(c) for c in CHUNKS]


def test_same_decoded_body_as_starlette_gzip(anyio_backend: tuple[str, dict[str, object]]) -> None:
    inner = InnerApp(body=CHUNKS)
    ours = call_asgi(Compression(inner.asgi(), brotli=False, zstd=False), _request(b"gzip"))
    theirs = call_asgi(GZipMiddleware(inner.asgi()), _request(b"gzip"))
    for result in (ours, theirs):
        assert result.header(b"content-encoding") == b"gzip"
        assert result.header(b"vary") == b"Accept-Encoding"
        assert gzip.decompress(result.body) == WHOLE


def test_preference_between_equal_q_values_is_zstd_br_gzip() -> None:
    app = Compression(InnerApp(body=CHUNKS).wsgi())
    for accept, coding in (
        (b"gzip, br, zstd", b"zstd"),
        (b"gzip, br", b"br"),
        (b"gzip;q=1, br;q=0.9, zstd;q=0.8", b"gzip"),
    ):
        assert call_wsgi(app, _request(accept)).header(b"content-encoding") == coding


def test_malformed_accept_encoding_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    result = call_wsgi(Compression(InnerApp(body=CHUNKS).wsgi()), _request(b"gzip;q=7"))
    assert (result.header(b"content-encoding"), result.body) == (None, WHOLE)
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.name == "bridge.middleware.compression"
    assert "'gzip;q=7'" in record.getMessage()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"gzip_level": 0}, ValueError, "gzip_level"),
        ({"gzip_level": 10}, ValueError, "gzip_level"),
        ({"minimum_size": -1}, ValueError, "minimum_size"),
        ({"minimum_size": "1k"}, ValueError, "minimum_size"),
        ({"brotli": 12}, ValueError, "brotli must be"),
        ({"zstd": 0}, ValueError, "zstd must be"),
        ({"zstd": "fast"}, ValueError, "zstd must be"),
        ({"exclude_types": ["png"]}, ValueError, "not a media type"),
        ({"exclude_types": ["image/png\r\n"]}, ValueError, "not a media type"),
        ({"event_stream": "yes"}, TypeError, "event_stream"),
        ({"exempt": ["raw"]}, ValueError, "must start with '/'"),
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Compression(InnerApp().wsgi(), **options)


def test_missing_optional_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def without_brotli(name: str, package: str | None = None) -> Any:
        if name == "brotli":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_brotli)
    with pytest.raises(ImportError, match=r"wsgi-asgi-bridge\[compression\]"):
        Compression(InnerApp().wsgi(), brotli=True)
    app = Compression(InnerApp(body=CHUNKS).wsgi())  # None: offered only when installed
    assert call_wsgi(app, _request(b"br, gzip;q=0.5")).header(b"content-encoding") == b"gzip"


@pytest.mark.parametrize("restart_on_empty_chunk", [False, True])
def test_wsgi_restart_while_the_first_chunk_is_read_is_compressed_by_its_new_head(
    restart_on_empty_chunk: bool,
) -> None:
    """A WSGI app starts a response whose body would pass unchanged (too short), then
    restarts it with ``exc_info`` while its first chunk is read: the new head decides,
    and the body is compressed."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])

        def body() -> Iterator[bytes]:
            if restart_on_empty_chunk:
                yield b""
            try:
                raise ValueError("failed after start_response")
            except ValueError:
                start_response(
                    "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
                )
            yield WHOLE[:1000]
            yield WHOLE[1000:]

        return body()

    result = call_wsgi(Compression(app), _request(b"gzip"))
    assert result.status == 500
    assert result.header(b"content-encoding") == b"gzip"
    assert gzip.decompress(result.body) == WHOLE
