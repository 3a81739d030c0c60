"""Unit tests of WsgiToAsgi's parts without an app or a server: the ``wsgi.input``
stream, the response state machine, and the loop <-> thread queue."""

from __future__ import annotations

import sys
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge._http.wsgi_input import ClientDisconnected, RequestBodyError, WsgiInput
from bridge._loop.handoff import HandoffQueue
from bridge.wsgi_to_asgi._app_run import ResponseError, ResponseState

# -- wsgi.input ------------------------------------------------------------------------


def stream_of(chunks: list[bytes], declared: int | None = None) -> WsgiInput:
    rest = list(chunks[1:])

    def more() -> bytes | None:
        return rest.pop(0) if rest else None

    return WsgiInput(chunks[0] if chunks else b"", more if len(chunks) > 1 else None, declared)


def batched_stream_of(batches: list[list[bytes]], declared: int | None = None) -> WsgiInput:
    """As WsgiToAsgi hands them over: each ``more()`` returns every chunk queued by then."""
    rest = list(batches)

    def more() -> list[bytes] | None:
        return rest.pop(0) if rest else None

    return WsgiInput(b"", more, declared)


@given(
    batches=st.lists(st.lists(st.binary(max_size=50), max_size=4), max_size=6),
    sizes=st.lists(st.integers(min_value=0, max_value=70), max_size=20),
    lines=st.booleans(),
)
def test_batched_chunks_read_back_in_order(
    batches: list[list[bytes]], sizes: list[int], lines: bool
) -> None:
    body = b"".join(b"".join(batch) for batch in batches)
    stream = batched_stream_of(batches, len(body))
    read = stream.readline if lines else stream.read
    got = b"".join(read(size) for size in sizes) + stream.read()
    assert got == body
    assert stream.read(5) == b""


def test_a_batch_over_the_content_length_is_refused() -> None:
    stream = batched_stream_of([[b"abc", b"def"]], 4)
    with pytest.raises(RequestBodyError, match="longer than its Content-Length of 4"):
        stream.read()


def test_read1_returns_one_chunk_of_a_batch() -> None:
    stream = batched_stream_of([[b"ab", b"cd"], [b"e"]], 5)
    assert [stream.read1(10), stream.read1(10), stream.read1(10), stream.read1(10)] == [
        b"ab",
        b"cd",
        b"e",
        b"",
    ]


@given(
    chunks=st.lists(st.binary(max_size=50), min_size=1, max_size=8),
    sizes=st.lists(st.integers(min_value=0, max_value=70), max_size=20),
)
def test_reads_of_any_size_return_the_body_in_order(chunks: list[bytes], sizes: list[int]) -> None:
    stream = stream_of(chunks)
    got = b"".join(stream.read(size) for size in sizes) + stream.read()
    assert got == b"".join(chunks)
    assert stream.read(5) == b""


def lines(body: bytes) -> list[bytes]:
    """Lines ending at b"\n" only (bytes.splitlines also splits at b"\r")."""
    parts = body.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@given(chunks=st.lists(st.binary(max_size=30), min_size=1, max_size=8))
def test_lines_across_chunks(chunks: list[bytes]) -> None:
    body = b"".join(chunks)
    assert list(stream_of(chunks)) == lines(body)
    assert stream_of(chunks).readlines() == lines(body)


def test_readline_with_size_and_readlines_hint() -> None:
    stream = stream_of([b"abc", b"def\nxy", b"z\n", b"last"])
    assert stream.readline(2) == b"ab"
    assert stream.readline() == b"cdef\n"
    assert stream.readlines(1) == [b"xyz\n"]
    assert stream.read(None) == b"last"


def test_read_returns_whole_chunks_without_copying() -> None:
    chunk = b"x" * 1000
    assert stream_of([chunk]).read() is chunk


@pytest.mark.parametrize(
    ("chunks", "declared", "message"),
    [
        pytest.param([b"abc", b"de"], 3, "longer than its Content-Length", id="longer"),
        pytest.param([b"abc", b"de"], 9, "ended after 5 of its 9 bytes", id="shorter"),
    ],
)
def test_body_disagreeing_with_content_length(
    chunks: list[bytes], declared: int, message: str
) -> None:
    stream = stream_of(chunks, declared)
    with pytest.raises(RequestBodyError, match=message):
        stream.read()


def test_disconnect_propagates_as_oserror() -> None:
    def more() -> bytes | None:
        raise ClientDisconnected("client disconnected before the request body ended")

    stream = WsgiInput(b"ab", more, None)
    assert stream.read(2) == b"ab"
    with pytest.raises(OSError, match="disconnected"):
        stream.read(1)


# -- the response state machine ------------------------------------------------------------


def machine(method: str = "GET") -> tuple[ResponseState, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    return ResponseState(sent.append, head_request=method == "HEAD"), sent


def test_start_is_held_until_the_first_non_empty_chunk() -> None:
    state, sent = machine()
    state.start_response("200 OK", [("Content-Type", "text/plain")], None)
    state.body(b"")
    assert sent == []
    state.body(b"x")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    state.finish()
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_exc_info_replaces_status_before_body_and_reraises_after() -> None:
    state, sent = machine()
    state.start_response("200 OK", [], None)
    try:
        raise KeyError("first")
    except KeyError:
        state.start_response("500 Oops", [], sys.exc_info())
    state.body(b"x")
    assert sent[0]["status"] == 500
    try:
        raise ValueError("second")
    except ValueError:
        with pytest.raises(ValueError, match="second"):
            state.start_response("502 Bad Gateway", [], sys.exc_info())


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    state, _ = machine()
    state.start_response("200 OK", [], None)
    with pytest.raises(ResponseError, match="twice"):
        state.start_response("200 OK", [], None)


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        pytest.param(200, [], "must be str", id="int-status"),
        pytest.param("20 OK", [], "invalid status", id="short-status"),
        pytest.param("200OK", [], "invalid status", id="no-space"),
        pytest.param("200 OK", ("a", "b"), "must be a list", id="tuple-headers"),
        pytest.param("200 OK", [("A", 1)], "must be str", id="int-value"),
        pytest.param("200 OK", [("A B", "1")], "invalid response header name", id="space"),
        pytest.param("200 OK", [("A", "1\n2")], "contains CR, LF or NUL", id="newline"),
        pytest.param("200 OK", [("Content-Length", "x")], "Content-Length", id="bad-length"),
    ],
)
def test_invalid_start_response(status: Any, headers: Any, message: str) -> None:
    state, _ = machine()
    with pytest.raises(ResponseError, match=message):
        state.start_response(status, headers, None)


def test_content_length_trims_and_flags_overflow() -> None:
    state, sent = machine()
    state.start_response("200 OK", [("Content-Length", "4")], None)
    state.body(b"abc")
    state.body(b"def")
    assert state.overflowed
    assert b"".join(m.get("body", b"") for m in sent) == b"abcd"


def test_short_body_is_an_error_but_not_for_head_or_304() -> None:
    state, _ = machine()
    state.start_response("200 OK", [("Content-Length", "4")], None)
    state.body(b"ab")
    with pytest.raises(ResponseError, match="2 of its 4 bytes"):
        state.finish()
    for method, status in (("HEAD", "200 OK"), ("GET", "304 Not Modified")):
        state, sent = machine(method)
        state.start_response(status, [("Content-Length", "4")], None)
        state.finish()
        assert sent[-1]["more_body"] is False


def test_fail_replaces_an_unsent_response() -> None:
    state, sent = machine()
    state.start_response("200 OK", [("X-A", "1")], None)
    state.fail(500)
    assert sent[0]["status"] == 500
    assert (b"x-a", b"1") not in sent[0]["headers"]
    assert sent[-1]["more_body"] is False


# -- the loop <-> thread queue -----------------------------------------------------------


@pytest.mark.anyio
async def test_thread_producer_is_bounded_by_the_limit() -> None:
    queue = HandoffQueue[bytes](100, len)
    produced = 0
    in_queue_max = 0

    def produce() -> None:
        nonlocal produced
        for _ in range(50):
            queue.put_from_thread(b"x" * 30)
            produced += 1
        queue.finish()

    received = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, produce)
        while batch := await queue.get_all():
            in_queue_max = max(in_queue_max, sum(map(len, batch)))
            received += len(batch)
            await anyio.lowlevel.checkpoint()
    assert received == produced == 50
    assert in_queue_max <= 100


@pytest.mark.anyio
async def test_loop_producer_thread_consumer_and_end() -> None:
    queue = HandoffQueue[bytes](10, len)
    got: list[bytes] = []

    def consume() -> None:
        while (batch := queue.get_all_from_thread()) is not None:
            got.extend(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, consume)
        for i in range(20):
            await queue.put(b"%02d" % i)
        queue.finish()
    assert got == [b"%02d" % i for i in range(20)]


@pytest.mark.anyio
async def test_abort_releases_a_blocked_thread() -> None:
    queue = HandoffQueue[bytes](1, len)
    blocked = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        queue.put_from_thread(b"a")
        blocked.set()
        try:
            queue.put_from_thread(b"b")  # full: waits until the abort
        except ClientDisconnected as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, produce)
        await anyio.to_thread.run_sync(blocked.wait, 10)
        queue.abort(ClientDisconnected("gone"))
    assert len(errors) == 1
    with pytest.raises(ClientDisconnected):
        await queue.get_all()


@pytest.mark.anyio
async def test_oversized_item_is_accepted_into_an_empty_queue() -> None:
    queue = HandoffQueue[bytes](4, len)
    await queue.put(b"x" * 100)
    assert queue.get_ready() == [b"x" * 100]
    assert queue.get_ready() is None
    queue.finish()
    assert queue.get_ready() == []
