"""Sans-IO content coding: Accept-Encoding negotiation and streaming encoders.

Invariants:

* :func:`negotiate` follows RFC 9110 12.5.3: q-values from 0 to 1 with at
  most three decimals, ``*`` for codings not named, ``identity`` acceptable
  unless refused. A header it cannot parse (a q-value out of range, a
  member that is not a token) raises :class:`MalformedAcceptEncoding`: the
  caller sends the body as it is.
* Between codings with the same q-value the server's order wins
  (zstd, br, gzip: best ratio for the time first).
* An encoder's :meth:`Encoder.chunk` returns everything the client needs to
  decode what it was given so far (a sync flush), so a stream is never held
  back; memory is the compressor's window, whatever the body's size.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = (
    "CODINGS",
    "Encoder",
    "MalformedAcceptEncoding",
    "available_codings",
    "negotiate",
)

#: Server preference between equal q-values.
CODINGS: Final = ("zstd", "br", "gzip")
_MEMBER: Final = re.compile(
    r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(?:;\s*[qQ]\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*)?"
)


class MalformedAcceptEncoding(ValueError):
    """An Accept-Encoding header that is not a list of ``coding[;q=value]``."""


def negotiate(header: str | None, offered: Iterable[str]) -> str | None:
    """The coding to use for a client sending ``header``, from ``offered`` (in preference
    order), or None for the identity (no coding)."""
    if header is None:
        return None
    weights: dict[str, float] = {}
    for member in header.split(","):
        if not member.strip():
            continue  # empty list elements are allowed (RFC 9110 5.6.1)
        match = _MEMBER.fullmatch(member)
        if match is None:
            raise MalformedAcceptEncoding(member.strip()[:100])
        coding, q = match.group(1).lower(), match.group(2)
        weights[coding] = 1.0 if q is None else float(q)
    star = weights.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in offered:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and weights.get("identity", 0.0) > best_q:
        return None  # the client prefers the body as it is
    return best


class Encoder:
    """One response body's encoder: ``chunk(data)`` then ``end()``."""

    __slots__ = ("_end", "_flush")

    def __init__(self, flush: Callable[[bytes], bytes], end: Callable[[], bytes]) -> None:
        self._flush = flush
        self._end = end

    def chunk(self, data: bytes) -> bytes:
        """``data`` encoded and flushed: all a client needs to decode it now."""
        return self._flush(data)

    def end(self) -> bytes:
        """The last bytes of the encoded body."""
        return self._end()


def gzip_encoder(level: int) -> Encoder:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def flush(data: bytes) -> bytes:
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    return Encoder(flush, compressor.flush)


def _brotli_factory(module: Any, quality: int) -> Callable[[], Encoder]:
    def make() -> Encoder:
        compressor = module.Compressor(quality=quality)

        def flush(data: bytes) -> bytes:
            out: bytes = compressor.process(data) + compressor.flush()
            return out

        return Encoder(flush, compressor.finish)

    return make


def _zstd_factory(module: Any, level: int) -> Callable[[], Encoder]:
    context = module.ZstdCompressor(level=level)
    block = module.COMPRESSOBJ_FLUSH_BLOCK

    def make() -> Encoder:
        compressor = context.compressobj()

        def flush(data: bytes) -> bytes:
            out: bytes = compressor.compress(data) + compressor.flush(block)
            return out

        return Encoder(flush, compressor.flush)

    return make


#: coding -> (module providing it, level range, default level, factory of encoder makers)
_OPTIONAL: Final = {
    "br": ("brotli", range(12), 4, _brotli_factory),
    "zstd": ("zstandard", range(1, 23), 3, _zstd_factory),
}


def optional_coding(
    coding: str, setting: bool | int | None, option: str
) -> Callable[[], Encoder] | None:
    """The encoder maker for an optional coding, or None when it is off or not installed.

    ``setting``: None uses it when its module is installed; False turns it off;
    True or a level requires the module (ImportError at construction otherwise).
    """
    module_name, levels, default, factory = _OPTIONAL[coding]
    if setting is False:
        return None
    if (
        setting is not None
        and setting is not True
        and (isinstance(setting, bool) or not isinstance(setting, int) or setting not in levels)
    ):
        raise ValueError(
            f"{option} must be None, True, False or a level from {levels.start} to "
            f"{levels.stop - 1}, not {setting!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if setting is None:
            return None
        raise ImportError(
            f"{option}={setting!r} needs the {module_name!r} package: "
            "pip install 'wsgi-asgi-bridge[compression]'"
        ) from None
    level = default if setting is None or setting is True else setting
    maker: Callable[[], Encoder] = factory(module, level)
    return maker


def available_codings() -> tuple[str, ...]:
    """The codings this process can produce (gzip always; br and zstd when installed)."""
    found = [c for c in CODINGS if c == "gzip" or optional_coding(c, None, c) is not None]
    return tuple(found)
