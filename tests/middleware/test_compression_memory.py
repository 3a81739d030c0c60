"""A 200 MiB streamed response through Compression keeps its peak memory growth under
8 MiB, under WSGI and ASGI (asyncio and trio): each run in a fresh process, with
tracemalloc (which sees zlib's buffers: CPython allocates them through PyMem) tracing
every allocation made while the stream passes, and the decoded stream checked whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
CHILD = r"""
import asyncio, io, json, sys, tracemalloc, zlib
import anyio
from bridge import Compression
from bridge.testing import Request
from bridge._http.translate import environ_from_scope

CHUNK = b"".join(b"%06d a line of a long streamed log, compressible but not all alike\n" % n
                 for n in range(1000))[: 64 * 1024]
COUNT = 200 * 1024 * 1024 // len(CHUNK) + 1
REQUEST = Request(headers=[(b"host", b"t"), (b"accept-encoding", b"gzip")])

def chunks():
    for _ in range(COUNT):
        yield CHUNK

class Sink:
    # Decodes as it goes and keeps only counts: what reaches the client is checked
    # without holding it.
    def __init__(self):
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.wire = self.decoded = 0
    def take(self, data):
        self.wire += len(data)
        self.decoded += len(self.decoder.decompress(data))

def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return chunks()

async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for chunk in chunks():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})

def run_wsgi(sink):
    environ = environ_from_scope(REQUEST.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    body = Compression(wsgi_app)(environ, lambda status, headers, exc_info=None: None)
    for data in body:
        sink.take(data)
    body.close()

def run_asgi(sink, backend):
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        if message["type"] == "http.response.body":
            sink.take(message.get("body", b""))
    async def main():
        await Compression(asgi_app)(REQUEST.scope(), receive, send)
    anyio.run(main, backend=backend)

interface = sys.argv[1]
sink = Sink()
run = (lambda: run_wsgi(sink)) if interface == "wsgi" else (lambda: run_asgi(sink, interface))
tracemalloc.start()
base, _ = tracemalloc.get_traced_memory()
tracemalloc.reset_peak()
run()
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({"growth": peak - base, "decoded": sink.decoded, "wire": sink.wire,
                  "expected": COUNT * len(CHUNK)}))
"""


@pytest.mark.parametrize("interface", ["wsgi", "asyncio", "trio"])
def test_200_mib_streamed_keeps_peak_growth_under_8_mib(interface: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, interface],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=280,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["decoded"] == result["expected"] >= 200 * MiB
    assert result["wire"] < result["expected"] // 4  # it was compressed
    assert result["growth"] < 8 * MiB, f"peak growth {result['growth'] / MiB:.1f} MiB"
