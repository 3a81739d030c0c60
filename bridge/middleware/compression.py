"""Compression: gzip, Brotli or Zstandard response bodies, negotiated and streamed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware._core.base import Interface, Middleware
from bridge.middleware._core.exchange import Exchange
from bridge.middleware._core.heads import Headers, RequestHead, ResponseHead
from bridge.middleware._encodings import (
    CODINGS,
    Encoder,
    MalformedAcceptEncoding,
    gzip_encoder,
    negotiate,
    optional_coding,
)
from bridge.middleware._host_rules import quoted_for_log
from bridge.middleware._vary import merge_vary

__all__ = ("EXCLUDED_TYPES", "Compression")

logger: Final = logging.getLogger("bridge.middleware.compression")
log: Final = EventLog(logger, "Compression")

#: Media types sent as they are by default: already compressed. ``type/*`` covers a
#: family; a ``+xml`` or ``+json`` type (``image/svg+xml``) is text and is compressed
#: unless listed exactly.
EXCLUDED_TYPES: Final = (
    "image/*",
    "video/*",
    "audio/*",
    "font/woff",
    "font/woff2",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
)
_NO_BODY: Final = frozenset({204, 304})
_DROPPED: Final = frozenset({b"content-length", b"accept-ranges"})


class Compression(Middleware):
    """Compress response bodies the client accepts compressed, chunk by chunk.

    Options:

    * ``minimum_size``: bodies with a Content-Length below it are sent as
      they are (default 500). A body of unknown length is compressed.
    * ``gzip_level``: 1-9 (default 6). gzip is always offered.
    * ``brotli``, ``zstd``: None (default) offers the coding when its package
      is installed (``pip install 'wsgi-asgi-bridge[compression]'``); False
      never; True or a level (Brotli quality 0-11, default 4; zstd level
      1-22, default 3) requires it.
    * ``exclude_types``: media types sent as they are (default
      :data:`EXCLUDED_TYPES`: images, video, audio, archives, web fonts).
    * ``event_stream``: compress ``text/event-stream`` too (default False).
    * ``exempt``: requests never compressed: path patterns (see
      docs/middleware/configuring.md) or a function of the request head.

    Never compressed: a response that has a Content-Encoding, ``Cache-Control:
    no-transform``, a Content-Range or status 206, 204 or 304, a HEAD
    request's, announced ASGI trailers. Every other response gets ``Vary:
    Accept-Encoding`` merged into the app's; a compressed one loses its
    Content-Length and Accept-Ranges, and a strong ETag becomes weak.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: Any,
        *,
        minimum_size: int = 500,
        gzip_level: int = 6,
        brotli: bool | int | None = None,
        zstd: bool | int | None = None,
        exclude_types: Iterable[str] = EXCLUDED_TYPES,
        event_stream: bool = False,
        exempt: Exempt = None,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        if isinstance(minimum_size, bool) or not isinstance(minimum_size, int) or minimum_size < 0:
            raise ValueError(f"minimum_size must be a number of bytes >= 0, not {minimum_size!r}")
        if isinstance(gzip_level, bool) or gzip_level not in range(1, 10):
            raise ValueError(f"gzip_level must be from 1 to 9, not {gzip_level!r}")
        self.minimum_size = minimum_size
        self.makers: dict[str, Callable[[], Encoder]] = {}
        for coding, setting, option in (("zstd", zstd, "zstd"), ("br", brotli, "brotli")):
            maker = optional_coding(coding, setting, option)
            if maker is not None:
                self.makers[coding] = maker
        self.makers["gzip"] = lambda: gzip_encoder(gzip_level)
        self.offered = tuple(c for c in CODINGS if c in self.makers)
        self.excluded = _media_types(exclude_types)
        if not isinstance(event_stream, bool):
            raise TypeError(f"event_stream must be True or False, not {event_stream!r}")
        if not event_stream:
            self.excluded |= {"text/event-stream"}
        self.exempt = exempt_matcher(exempt, "Compression: exempt")

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        if self.exempt is not None and self.exempt(head):
            return None
        coding = None
        if head.method != "HEAD":
            value = head.header(b"accept-encoding")
            try:
                coding = negotiate(None if value is None else value.decode("latin-1"), self.offered)
            except MalformedAcceptEncoding as exc:
                shown = quoted_for_log(str(exc))
                log.warning(
                    "ignored", head, "malformed Accept-Encoding member %s; sent uncompressed", shown
                )
        return _CompressionExchange(head, now, self, coding)

    def compresses(self, head: ResponseHead) -> bool:
        """True when the response with ``head`` may be compressed (whoever asked)."""
        if head.status < 200 or head.status in _NO_BODY or head.status == 206 or head.trailers:
            return False
        length = media = cache = None
        for name, value in head.headers:
            lowered = name.lower()
            if lowered == b"content-encoding" and value.strip().lower() != b"identity":
                return False
            if lowered == b"content-range":
                return False
            if lowered == b"content-length":
                length = value
            elif lowered == b"content-type":
                media = value
            elif lowered == b"cache-control":
                cache = value if cache is None else cache + b"," + value
        if cache is not None and b"no-transform" in cache.lower():
            return False
        if length is not None and length.strip().isdigit() and int(length) < self.minimum_size:
            return False
        return media is None or not _is_excluded(media, self.excluded)


def _media_types(types: Iterable[str]) -> set[str]:
    if isinstance(types, str):
        types = (types,)
    out = set()
    for media in types:
        if not isinstance(media, str) or media.count("/") != 1 or not media.isascii():
            raise ValueError(f"exclude_types: {media!r} is not a media type like 'image/*'")
        if any(ch in media for ch in " \t\r\n;,"):
            raise ValueError(f"exclude_types: {media!r} is not a media type like 'image/*'")
        out.add(media.lower())
    return out


def _is_excluded(content_type: bytes, excluded: set[str]) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    if media in excluded:
        return True
    if media.endswith(("+xml", "+json")):
        return False
    family = media.partition("/")[0]
    return f"{family}/*" in excluded


class _CompressionExchange(Exchange):
    """One response: ``encoder`` is set in ``response_start`` when its body is compressed."""

    __slots__ = ("coding", "encoder", "mw")

    def __init__(self, head: RequestHead, now: float, mw: Compression, coding: str | None) -> None:
        super().__init__(head, now)
        self.mw = mw
        self.coding = coding
        self.encoder: Encoder | None = None

    def response_start(self, head: ResponseHead) -> None:
        if self.coding is not None and self.mw.compresses(head):
            self.encoder = self.mw.makers[self.coding]()

    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        encoder = self.encoder
        if encoder is None:
            return (chunk,)
        out = encoder.chunk(chunk) if chunk else b""
        if not more:
            out += encoder.end()
        return (out,) if out else ()

    def response(self, head: ResponseHead) -> ResponseHead:
        headers = merge_vary(head.headers, b"Accept-Encoding")
        if self.encoder is not None and self.coding is not None:
            headers = _encoded_headers(headers, self.coding.encode("ascii"))
        return head.replace(headers=headers)


def _encoded_headers(headers: Headers, coding: bytes) -> Headers:
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _DROPPED or lowered == b"content-encoding":
            continue
        if lowered == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value  # the compressed bytes are not the same representation
        out.append((name, value))
    out.append((b"content-encoding", coding))
    return tuple(out)
