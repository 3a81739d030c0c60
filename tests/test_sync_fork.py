"""bridge.sync after ``os.fork()``: a child inherits nothing of the parent's loops and threads.

A child forked inside a ``sync_to_async`` call (``multiprocessing`` with the fork start
method, a pre-forking server that preloads the app) must run ``async_to_sync`` on a loop of
its own, and exit without touching (or finalising) what its parent was running.

Each child reports through its exit status; the parent waits for it with a deadline and
kills it if it hangs, so a regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

import anyio
import anyio.lowlevel
import pytest

import bridge

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.timeout(60),
    # Python 3.12+ warns on fork() with threads running; forking such a process is the point.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

CHILD_DEADLINE = 20.0  # seconds: a hang check, not a timing


def _exit_with(check: Callable[[], object]) -> NoReturn:
    code = 0
    try:
        check()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def wait_for_child(pid: int) -> int:
    """The child's exit code; kill it and fail if it is still running at the deadline."""
    deadline = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child was still running after {CHILD_DEADLINE} s (it hung)")


async def answer() -> int:
    await anyio.lowlevel.checkpoint()
    return 42


def fork_then_cross_back() -> int:
    """Forks; the child calls async_to_sync and exits 42 + what it got minus 42."""
    pid = os.fork()
    if pid == 0:
        _exit_with(lambda: _check_answer(bridge.async_to_sync(answer)()))
    return wait_for_child(pid)


def _check_answer(got: int) -> None:
    assert got == 42, got


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False], ids=["sensitive", "pooled"])
async def test_a_child_forked_inside_sync_to_async_runs_async_to_sync(
    thread_sensitive: bool,
) -> None:
    """The forking thread works for the parent's loop; in the child that loop does not run."""
    call = bridge.sync_to_async(fork_then_cross_back, thread_sensitive=thread_sensitive)
    assert await call() == 0


@pytest.mark.anyio
async def test_a_child_forked_inside_nested_crossings_runs_async_to_sync() -> None:
    """sync_to_async -> async_to_sync -> sync_to_async -> fork: every level is the parent's."""

    async def middle() -> int:
        return await bridge.sync_to_async(fork_then_cross_back)()

    def outer() -> int:
        return bridge.async_to_sync(middle)()

    assert await bridge.sync_to_async(outer)() == 0


@pytest.mark.anyio
async def test_a_child_forked_inside_an_anyio_worker_runs_async_to_sync() -> None:
    assert await anyio.to_thread.run_sync(fork_then_cross_back) == 0


def test_a_child_forked_while_a_call_runs_elsewhere_gets_its_own_threads() -> None:
    """A thread-sensitive call is running in the parent at fork time: the child's own
    thread-sensitive calls do not queue behind it (the running thread is not the child's)."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(20)

    async def hold_the_shared_thread() -> None:
        await bridge.sync_to_async(hold)()

    holder = threading.Thread(target=lambda: asyncio.run(hold_the_shared_thread()))
    holder.start()
    try:
        assert started.wait(10)
        pid = os.fork()
        if pid == 0:

            def check() -> None:
                name = asyncio.run(bridge.sync_to_async(threading.current_thread)()).name
                assert name == "bridge-sync-thread-sensitive", name

            _exit_with(check)
        assert wait_for_child(pid) == 0
    finally:
        release.set()
        holder.join(10)
