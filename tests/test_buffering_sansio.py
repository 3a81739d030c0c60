"""The sans-IO parts of the buffering middleware: no app, no server, no loop."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge._http.units import parse_seconds, parse_size
from bridge.buffering._account import BodyAccount, BodyRejected
from bridge.buffering._policy import ResponseCollector, may_buffer
from bridge.buffering._replies import render
from bridge.buffering._rules import (
    BodyLimits,
    RequestBufferingRule,
    app_path,
    compile_limits,
    limits_for,
    make_limits,
)
from bridge.buffering._spool import ChunkReader, Spool, SpoolRefused

# -- sizes and durations --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(0, 0, id="zero"),
        pytest.param(1234, 1234, id="int"),
        pytest.param("1234", 1234, id="digits"),
        pytest.param("512k", 512 * 1024, id="nginx-k"),
        pytest.param("10m", 10 * 1024**2, id="nginx-m"),
        pytest.param("1g", 1024**3, id="nginx-g"),
        pytest.param("10MB", 10_000_000, id="si-MB"),
        pytest.param("10 kB", 10_000, id="si-kB-space"),
        pytest.param("1GiB", 1024**3, id="GiB"),
        pytest.param("1.5MiB", 1024**2 * 3 // 2, id="fraction"),
        pytest.param(" 8 b ", 8, id="bytes-suffix"),
    ],
)
def test_parse_size(value: object, expected: int | None) -> None:
    assert parse_size(value, option="max_body_size") == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(-1, ValueError, id="negative"),
        pytest.param("-1k", ValueError, id="negative-str"),
        pytest.param("10 parsecs", ValueError, id="unit"),
        pytest.param("", ValueError, id="empty"),
        pytest.param("MB", ValueError, id="no-number"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(b"10", TypeError, id="bytes"),
    ],
)
def test_parse_size_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_body_size"):
        parse_size(value, option="max_body_size")


def test_parse_size_required() -> None:
    with pytest.raises(TypeError, match="memory_size is required"):
        parse_size(None, option="memory_size", allow_none=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (1, 1.0), (0.25, 0.25)],
)
def test_parse_seconds(value: object, expected: float | None) -> None:
    assert parse_seconds(value, option="body_timeout") == expected


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "30", True])
def test_parse_seconds_refuses(value: object) -> None:
    with pytest.raises((TypeError, ValueError), match="body_timeout"):
        parse_seconds(value, option="body_timeout")


# -- rules -------------------------------------------------------------------------

BASE = make_limits(
    max_body_size="1m", body_timeout=30, body_deadline=None, mode="buffer", memory_size="64k"
)


def test_rules_first_match_wins_and_inherit() -> None:
    rules = compile_limits(
        BASE,
        [
            RequestBufferingRule("/upload", methods=["post", "PUT"], max_body_size="1g"),
            RequestBufferingRule(re.compile(r"/api/v\d+/"), max_body_size=1000, mode="stream"),
            RequestBufferingRule("/", body_timeout=None),
        ],
    )
    up = limits_for(BASE, rules, "POST", "/upload/big")
    assert up.max_body_size == 1024**3
    assert up.body_timeout == 30  # inherited
    assert up.memory_size == 64 * 1024
    assert limits_for(BASE, rules, "GET", "/upload").body_timeout is None  # method not in rule
    assert limits_for(BASE, rules, "POST", "/uploads").body_timeout is None  # segment boundary
    api = limits_for(BASE, rules, "POST", "/api/v2/items")
    assert (api.max_body_size, api.mode) == (1000, "stream")


def test_rules_without_catch_all_fall_back_to_base() -> None:
    rules = compile_limits(BASE, [RequestBufferingRule("/upload/", max_body_size=None)])
    assert limits_for(BASE, rules, "POST", "/upload").max_body_size is None
    assert limits_for(BASE, rules, "POST", "/other") is BASE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"path": "upload"}, "must start with '/'", id="relative"),
        pytest.param({"path": "/u", "methods": "POST;GET"}, "not an HTTP method", id="methods"),
        pytest.param(
            {"path": "/u", "max_body_size": "ten"}, r"rules\[0\]\.max_body_size", id="size"
        ),
        pytest.param({"path": "/u", "mode": "spool"}, r"rules\[0\]\.mode", id="mode"),
        pytest.param({"path": "/u", "body_timeout": -1}, r"rules\[0\]\.body_timeout", id="timeout"),
    ],
)
def test_rule_errors_name_the_option(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        compile_limits(BASE, [RequestBufferingRule(**kwargs)])  # type: ignore[arg-type]


def test_rules_must_be_rule_objects() -> None:
    with pytest.raises(TypeError, match="RequestBufferingRule"):
        compile_limits(BASE, [{"path": "/"}])  # type: ignore[list-item]


def test_app_path() -> None:
    assert app_path("/mnt/upload", "/mnt") == "/upload"
    assert app_path("/mnt", "/mnt") == "/"
    assert app_path("/upload", "") == "/upload"


# -- the body account -------------------------------------------------------------


def limits(
    *, max_body_size: object = 10, body_timeout: object = 5, body_deadline: object = None
) -> BodyLimits:
    return make_limits(
        max_body_size=max_body_size,
        body_timeout=body_timeout,
        body_deadline=body_deadline,
        mode="buffer",
        memory_size=4,
    )


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        pytest.param([(b"content-length", b"11")], 413, "declared", id="declared-over"),
        pytest.param([(b"content-length", b"-1")], 400, "invalid", id="negative"),
        pytest.param([(b"content-length", b"ten")], 400, "invalid", id="non-numeric"),
        pytest.param([(b"content-length", b"+5")], 400, "invalid", id="plus-sign"),
        pytest.param([(b"content-length", b"5, 5")], 400, "invalid", id="list-in-one"),
        pytest.param([(b"content-length", b"9" * 30)], 400, "invalid", id="huge"),
        pytest.param(
            [(b"content-length", b"5"), (b"content-length", b"5")],
            400,
            "duplicated",
            id="duplicated",
        ),
        pytest.param(
            [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
            400,
            "Transfer-Encoding",
            id="cl-and-te",
        ),
    ],
)
def test_head_rejections(headers: list[tuple[bytes, bytes]], status: int, detail: str) -> None:
    with pytest.raises(BodyRejected, match=detail) as info:
        BodyAccount.open(headers, limits(), now=0.0)
    assert info.value.status == status
    assert info.value.close


def test_declared_at_the_cap_is_accepted_and_counted() -> None:
    account = BodyAccount.open([(b"content-length", b"10")], limits(), now=0.0)
    account.add(10)
    account.finish()
    assert account.received == 10


def test_chunked_crosses_the_cap_mid_stream() -> None:
    account = BodyAccount.open([(b"transfer-encoding", b"chunked")], limits(), now=0.0)
    account.add(6)
    with pytest.raises(BodyRejected, match="crossed") as info:
        account.add(5)
    assert info.value.status == 413


def test_no_cap() -> None:
    account = BodyAccount.open([], limits(max_body_size=None), now=0.0)
    account.add(10**12)
    account.finish()


def test_short_body_is_a_disconnect() -> None:
    account = BodyAccount.open([(b"content-length", b"8")], limits(), now=0.0)
    account.add(3)
    with pytest.raises(BodyRejected, match="3 of 8") as info:
        account.finish()
    assert info.value.status == 400
    assert account.disconnected().status == 400


def test_read_timeout_and_deadline() -> None:
    account = BodyAccount.open([], limits(body_timeout=5, body_deadline=12), now=100.0)
    assert account.read_timeout(100.0) == 5
    assert account.read_timeout(109.0) == 3  # the deadline is closer than body_timeout
    with pytest.raises(BodyRejected) as info:
        account.read_timeout(112.0)
    assert info.value.status == 408
    assert account.timed_out().status == 408
    assert BodyAccount.open([], limits(body_timeout=None), now=0).read_timeout(1e9) is None


def test_a_wait_cut_short_by_the_deadline_times_out_naming_the_deadline() -> None:
    account = BodyAccount.open([], limits(body_timeout=5, body_deadline=12), now=100.0)
    assert account.read_timeout(100.0) == 5
    assert "stalled after 0 bytes" in account.timed_out().detail  # body_timeout ended it
    account.add(3)
    assert account.read_timeout(109.0) == 3  # the deadline ends this wait
    assert account.timed_out().detail == (
        "request body not complete within body_deadline 12 s (3 bytes received)"
    )


def test_a_body_that_ends_after_the_deadline_is_408() -> None:
    account = BodyAccount.open([], limits(body_deadline=1), now=0.0)
    account.check_deadline(0.5)
    account.add(10)
    with pytest.raises(BodyRejected, match="not complete within body_deadline 1 s"):
        account.check_deadline(3.0)


def test_zero_length_declared() -> None:
    account = BodyAccount.open([(b"content-length", b"0")], limits(max_body_size=0), now=0)
    assert not account.expects_body


# -- replies -------------------------------------------------------------------------


def test_render_text_and_problem_json() -> None:
    rejection = BodyRejected(413, "declared Content-Length 11 is over the limit 10")
    text = render(rejection, "text")
    assert text.status == 413
    assert text.body == b"Content Too Large: declared Content-Length 11 is over the limit 10\n"
    assert (b"connection", b"close") in text.headers
    assert (b"content-length", str(len(text.body)).encode()) in text.headers
    problem = render(rejection, "problem+json")
    assert (b"content-type", b"application/problem+json") in problem.headers
    assert json.loads(problem.body) == {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": "declared Content-Length 11 is over the limit 10",
    }
    kept_open = render(BodyRejected(503, "disk full", close=False), "text")
    assert all(name != b"connection" for name, _ in kept_open.headers)


# -- spool ------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_spool_stays_in_memory_up_to_memory_size() -> None:
    spool = Spool(memory_size=6)
    spool.write(b"abc")
    spool.write(b"")
    spool.write(b"def")
    assert not spool.on_disk
    assert spool.reader().read() == b"abcdef"
    assert list(spool.iter_chunks()) == [b"abcdef"]
    spool.close()


def test_spool_moves_to_an_anonymous_file(tmp_path: Path) -> None:
    before = open_fds()
    spool = Spool(memory_size=4, directory=tmp_path)
    spool.write(b"abc")
    spool.write(b"defgh")
    assert spool.on_disk
    assert spool.size == 8
    assert list(tmp_path.iterdir()) == []  # no name on disk, ever
    assert list(spool.iter_chunks(size=3)) == [b"abc", b"def", b"gh"]
    assert spool.reader().read() == b"abcdefgh"
    spool.close()
    spool.close()
    assert open_fds() == before


def test_spool_refused_keeps_memory(tmp_path: Path) -> None:
    spool = Spool(memory_size=2, directory=tmp_path / "missing")
    spool.write(b"ab")
    with pytest.raises(SpoolRefused, match="cannot create the spool file"):
        spool.write(b"cd")
    assert spool.size == 2
    assert spool.reader().read() == b"ab"
    spool.close()


def test_spool_refused_while_writing_closes() -> None:
    spool = Spool(memory_size=0, directory="/dev/full")  # not a directory
    with pytest.raises(SpoolRefused):
        spool.write(b"x")
    spool.close()


# -- response policy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        pytest.param("GET", 200, [], True, id="plain"),
        pytest.param("HEAD", 200, [], False, id="head"),
        pytest.param("GET", 204, [], False, id="204"),
        pytest.param("GET", 304, [], False, id="304"),
        pytest.param("GET", 101, [], False, id="1xx"),
        pytest.param("GET", 200, [(b"content-type", b"text/event-stream")], False, id="sse"),
        pytest.param(
            "GET", 200, [(b"Content-Type", b"Text/Event-Stream; charset=utf-8")], False, id="sse-ci"
        ),
        pytest.param("GET", 200, [(b"x-accel-buffering", b"no")], False, id="opt-out"),
        pytest.param("GET", 200, [(b"x-accel-buffering", b"yes")], True, id="opt-in"),
        pytest.param("GET", 200, [(b"content-length", b"101")], False, id="too-long"),
        pytest.param("GET", 200, [(b"content-length", b"100")], True, id="fits"),
    ],
)
def test_may_buffer(
    method: str, status: int, headers: list[tuple[bytes, bytes]], expected: bool
) -> None:
    assert may_buffer(method, status, headers, capacity=100) is expected


def test_may_buffer_bypass_rule() -> None:
    def bypass(method: str, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        return status >= 500

    assert not may_buffer("GET", 500, [], capacity=10, bypass=bypass)
    assert may_buffer("GET", 200, [], capacity=10, bypass=bypass)


def test_collector_stream_once_over() -> None:
    collector = ResponseCollector(max_size=5, overflow="stream", max_file_size=100)
    assert collector.add(b"abc")
    assert not collector.add(b"def")  # would cross: the caller streams from here
    assert list(collector.held()) == [b"abc"]
    collector.close()


def test_collector_spills_to_file_then_streams(tmp_path: Path) -> None:
    collector = ResponseCollector(
        max_size=2, overflow="file", max_file_size=4, directory=str(tmp_path)
    )
    assert collector.add(b"ab")
    assert collector.add(b"cd")
    assert collector.spool.on_disk
    assert collector.add(b"ef")
    assert not collector.add(b"g")
    assert b"".join(collector.held()) == b"abcdef"
    collector.close()


def test_collector_disk_refused_falls_back_to_streaming(tmp_path: Path) -> None:
    collector = ResponseCollector(
        max_size=2, overflow="file", max_file_size=100, directory=str(tmp_path / "missing")
    )
    assert collector.add(b"ab")
    assert not collector.add(b"cd")
    assert collector.refused is not None
    assert list(collector.held()) == [b"ab"]
    collector.close()


# -- replaying memory chunks ------------------------------------------------------


def test_chunk_reader_read_is_exact_and_shares_aligned_chunks() -> None:
    first, second = b"abcd", b"efgh"
    reader = ChunkReader([first, second, b"ij"])
    assert reader.read(4) is first  # lined up with a chunk: no copy
    assert reader.read(3) == b"efg"
    assert reader.read(3) == b"hij"
    assert reader.read(3) == b""
    reader.seek(0)
    assert reader.read() == b"abcdefghij"
    reader.seek(0)
    assert reader.read(None) == b"abcdefghij"
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(3)


def test_chunk_reader_readline_across_chunks() -> None:
    reader = ChunkReader([b"ab\ncd", b"e\nf", b"g\n", b"tail"])
    assert reader.readline() == b"ab\n"
    assert reader.readline() == b"cde\n"
    assert reader.readline(1) == b"f"
    assert reader.readline() == b"g\n"
    assert list(reader) == [b"tail"]


@given(
    chunks=st.lists(st.binary(max_size=40), max_size=8),
    ops=st.lists(
        st.tuples(st.sampled_from(["read", "readline"]), st.integers(-1, 50)), max_size=12
    ),
)
def test_chunk_reader_behaves_like_bytesio(chunks: list[bytes], ops: list[tuple[str, int]]) -> None:
    reader, reference = ChunkReader(chunks), io.BytesIO(b"".join(chunks))
    for op, size in ops:
        assert getattr(reader, op)(size) == getattr(reference, op)(size)
    assert reader.read() == reference.read()


@given(
    limit=st.integers(0, 100),
    declared=st.one_of(st.none(), st.integers(0, 120)),
    sizes=st.lists(st.integers(0, 30), max_size=10),
)
def test_body_account_never_lets_more_than_the_cap_through(
    limit: int, declared: int | None, sizes: list[int]
) -> None:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    if declared is not None and declared > limit:
        with pytest.raises(BodyRejected, match="over the limit"):
            BodyAccount.open(headers, limits(max_body_size=limit), now=0.0)
        return
    account = BodyAccount.open(headers, limits(max_body_size=limit), now=0.0)
    passed = 0
    for size in sizes:
        if passed + size > limit:
            with pytest.raises(BodyRejected, match="crossed the limit"):
                account.add(size)
            return
        account.add(size)
        passed += size
    assert account.received == passed <= limit


@pytest.mark.parametrize(
    ("headers", "self_framed", "expected", "unframed"),
    [
        # A server may still deliver a body here (wsgi.input_terminated, a de-chunking
        # server that dropped the header): it is read and capped, never assumed empty.
        pytest.param([], False, True, True, id="http1-no-framing-a-body-may-follow"),
        pytest.param([], True, True, False, id="http2-may-have-a-body"),
        pytest.param([(b"transfer-encoding", b"chunked")], False, True, False, id="chunked"),
        pytest.param([(b"content-length", b"5")], False, True, False, id="declared"),
        pytest.param([(b"content-length", b"0")], True, False, False, id="declared-empty"),
    ],
)
def test_which_heads_announce_a_body(
    headers: list[tuple[bytes, bytes]], self_framed: bool, expected: bool, unframed: bool
) -> None:
    account = BodyAccount.open(headers, limits(), now=0.0, self_framed=self_framed)
    assert (account.expects_body, account.unframed) == (expected, unframed)
