"""bridge.sync_to_async / async_to_sync: asgiref's documented semantics, on asyncio and trio."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import inspect
import os
import subprocess
import sys
import threading
import traceback
import tracemalloc
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, assert_type

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

import bridge

pytestmark = pytest.mark.timeout(30)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


def thread_name() -> str:
    return threading.current_thread().name


def current_loop_identity() -> object:
    """The running asyncio loop or trio token: which loop this coroutine runs on."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        import trio

        return trio.lowlevel.current_trio_token()


def in_plain_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a new plain thread (no loop, no bridge state) and return its result."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=20)


# -- call shapes -------------------------------------------------------------------------


def double(x: int) -> int:
    return 2 * x


async def adouble(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


@bridge.sync_to_async
def decorated_plain(x: int) -> int:
    return x + 1


@bridge.sync_to_async(thread_sensitive=False)
def decorated_with_args(x: int) -> int:
    return x + 2


@bridge.async_to_sync
async def adecorated_plain(x: int) -> int:
    return x + 3


@bridge.async_to_sync(force_new_loop=True)
async def adecorated_with_args(x: int) -> int:
    return x + 4


class Account:
    def __init__(self) -> None:
        self.balance = 10

    @bridge.sync_to_async
    def read(self) -> int:
        return self.balance

    @bridge.async_to_sync
    async def aread(self) -> int:
        return self.balance


@pytest.mark.anyio
async def test_sync_to_async_call_shapes() -> None:
    assert await bridge.sync_to_async(double)(2) == 4
    assert await decorated_plain(1) == 2
    assert await decorated_with_args(1) == 3
    assert await Account().read() == 10
    assert inspect.iscoroutinefunction(decorated_plain)
    assert decorated_plain.__name__ == "decorated_plain"


def test_wrapped_signatures_survive_for_type_checkers() -> None:
    """mypy checks these ``assert_type`` calls (tests/ are type-checked, strict)."""

    def greet(name: str, *, punctuation: str = "!") -> str:
        return name + punctuation

    async def agreet(name: str, *, punctuation: str = "!") -> str:
        return name + punctuation

    to_async = bridge.sync_to_async(greet)
    to_sync = bridge.async_to_sync(agreet)
    checked: Callable[[str], Coroutine[Any, Any, str]] = to_async
    assert_type(to_sync("a", punctuation="?"), str)
    with pytest.raises(TypeError):
        to_sync("a", bogus=1)  # type: ignore[call-arg]  # an unused ignore would fail mypy
    assert inspect.signature(checked) == inspect.signature(greet)


def test_async_to_sync_call_shapes() -> None:
    assert bridge.async_to_sync(adouble)(2) == 4
    assert adecorated_plain(1) == 4
    assert adecorated_with_args(1) == 5
    assert Account().aread() == 10
    assert adecorated_plain.__name__ == "adecorated_plain"


def test_wrappers_of_bound_methods_keep_their_self_like_asgiref() -> None:
    """Django's handler reads ``middleware_method.__self__`` of wrapped middleware hooks."""
    import asgiref.sync

    class Ledger:
        balance = 3

        def read(self) -> int:
            return self.balance

        async def aread(self) -> int:
            return self.balance

    ledger = Ledger()
    to_async = bridge.sync_to_async(ledger.read)
    to_sync = bridge.async_to_sync(ledger.aread)
    assert to_async.__self__ is ledger  # type: ignore[attr-defined]
    assert to_sync.__self__ is ledger  # type: ignore[attr-defined]
    assert asgiref.sync.sync_to_async(ledger.read).__self__ is ledger  # type: ignore[attr-defined]
    assert to_sync() == 3
    assert not hasattr(bridge.sync_to_async(double), "__self__")
    assert not hasattr(bridge.async_to_sync(adouble), "__self__")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        pytest.param(
            lambda: bridge.sync_to_async(adouble), TypeError, "sync callables", id="s2a-async"
        ),
        pytest.param(
            lambda: bridge.sync_to_async(double, executor=ThreadPoolExecutor(1)),
            TypeError,
            "thread_sensitive=False",
            id="s2a-executor-sensitive",
        ),
        pytest.param(
            lambda: bridge.sync_to_async(double, limiter=anyio.CapacityLimiter(1)),
            TypeError,
            "thread_sensitive=False",
            id="s2a-limiter-sensitive",
        ),
        pytest.param(
            lambda: bridge.async_to_sync(42),  # type: ignore[call-overload]
            TypeError,
            "coroutine function",
            id="a2s-int",
        ),
        pytest.param(
            lambda: bridge.async_to_sync(adouble, backend="curio"),
            ValueError,
            "curio",
            id="a2s-backend",
        ),
    ],
)
def test_misuse_raises_at_wrap_time(
    make: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_awaiting_outside_an_event_loop_says_so() -> None:
    coroutine = bridge.sync_to_async(double)(1)
    with pytest.raises(RuntimeError, match="inside a running asyncio or trio event loop"):
        coroutine.send(None)
    coroutine.close()


def test_async_to_sync_rejects_a_coroutine_object() -> None:
    coroutine = adouble(1)
    try:
        with pytest.raises(TypeError, match="pass the function"):
            bridge.async_to_sync(coroutine)  # type: ignore[call-overload]
    finally:
        coroutine.close()


# -- contextvars both ways ---------------------------------------------------------------


def bump_request_id() -> str:
    seen = request_id.get()
    request_id.set(seen + "+sync")
    return seen


async def abump_request_id() -> str:
    seen = request_id.get()
    request_id.set(seen + "+async")
    return seen


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_sync_to_async_context_flows_both_ways(thread_sensitive: bool) -> None:
    request_id.set("r1")
    seen = await bridge.sync_to_async(bump_request_id, thread_sensitive=thread_sensitive)()
    assert seen == "r1"
    assert request_id.get() == "r1+sync"


@pytest.mark.anyio
async def test_sync_to_async_with_explicit_context_keeps_changes_there() -> None:
    context = contextvars.copy_context()
    request_id.set("outer")
    await bridge.sync_to_async(bump_request_id, context=context)()
    assert request_id.get() == "outer"
    assert context[request_id] == "-+sync"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("force_new_loop", [False, True])
def test_async_to_sync_context_flows_both_ways(backend: str, force_new_loop: bool) -> None:
    def caller() -> tuple[str, str]:
        request_id.set("r2")
        call = bridge.async_to_sync(
            abump_request_id, backend=backend, force_new_loop=force_new_loop
        )
        return call(), request_id.get()

    assert in_plain_thread(caller) == ("r2", "r2+async")


@pytest.mark.anyio
async def test_context_flows_through_a_nested_chain() -> None:
    def sync_middle() -> str:
        request_id.set(request_id.get() + "+middle")
        return bridge.async_to_sync(abump_request_id)()

    request_id.set("r3")
    assert await bridge.sync_to_async(sync_middle)() == "r3+middle"
    assert request_id.get() == "r3+middle+async"


# -- exceptions ------------------------------------------------------------------------


class Boom(Exception):
    pass


def sync_raise() -> None:
    raise Boom("from sync")


async def async_raise() -> None:
    raise Boom("from async")


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_sync_to_async_exception_keeps_traceback(thread_sensitive: bool) -> None:
    with pytest.raises(Boom, match="from sync") as caught:
        await bridge.sync_to_async(sync_raise, thread_sensitive=thread_sensitive)()
    names = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "sync_raise" in names


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_to_sync_exception_keeps_traceback(backend: str) -> None:
    def caller() -> list[str]:
        try:
            bridge.async_to_sync(async_raise, backend=backend)()
        except Boom as error:
            return [frame.name for frame in traceback.extract_tb(error.__traceback__)]
        raise AssertionError("no exception")

    assert "async_raise" in in_plain_thread(caller)


def exc_info_value() -> BaseException | None:
    return sys.exc_info()[1]


async def aexc_info_value() -> BaseException | None:
    return sys.exc_info()[1]


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_sys_exc_info_matches_in_sync_callee(thread_sensitive: bool) -> None:
    assert await bridge.sync_to_async(exc_info_value, thread_sensitive=thread_sensitive)() is None
    error = Boom("handled")
    try:
        raise error
    except Boom:
        seen = await bridge.sync_to_async(exc_info_value, thread_sensitive=thread_sensitive)()
    assert seen is error


@pytest.mark.parametrize("backend", BACKENDS)
def test_sys_exc_info_matches_in_async_callee(backend: str) -> None:
    def caller() -> tuple[BaseException | None, BaseException]:
        error = Boom("handled")
        try:
            raise error
        except Boom:
            return bridge.async_to_sync(aexc_info_value, backend=backend)(), error

    seen, error = in_plain_thread(caller)
    assert seen is error


# -- where things run --------------------------------------------------------------------


@pytest.mark.anyio
async def test_thread_sensitive_calls_share_one_thread_outside_any_scope() -> None:
    names = {await bridge.sync_to_async(thread_name)() for _ in range(5)}
    names |= set(
        await asyncio_or_trio_gather([bridge.sync_to_async(thread_name) for _ in range(20)])
    )
    assert len(names) == 1
    assert names != {threading.current_thread().name}


async def asyncio_or_trio_gather(
    functions: list[Callable[[], Coroutine[Any, Any, str]]],
) -> list[str]:
    results: list[str] = []

    async def run(fn: Callable[[], Coroutine[Any, Any, str]]) -> None:
        results.append(await fn())

    async with anyio.create_task_group() as tg:
        for fn in functions:
            tg.start_soon(run, fn)
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_outer_sync_thread_runs_every_thread_sensitive_call_in_a_nested_chain(backend: str) -> None:
    """sync -> async -> sync -> async -> sync: every sync step runs in the outermost thread."""

    async def level(depth: int) -> list[str]:
        return await bridge.sync_to_async(sync_level)(depth)

    def sync_level(depth: int) -> list[str]:
        here = [thread_name()]
        if depth == 0:
            return here
        return here + bridge.async_to_sync(level, backend=backend)(depth - 1)

    names = in_plain_thread(
        lambda: [thread_name(), *bridge.async_to_sync(level, backend=backend)(3)]
    )
    assert len(set(names)) == 1, names


@pytest.mark.anyio
async def test_nested_chain_from_async_keeps_one_thread() -> None:
    async def level(depth: int) -> list[str]:
        return await bridge.sync_to_async(sync_level)(depth)

    def sync_level(depth: int) -> list[str]:
        here = [thread_name()]
        return here if depth == 0 else here + bridge.async_to_sync(level)(depth - 1)

    names = await level(4)
    assert len(set(names)) == 1, names


@pytest.mark.anyio
async def test_concurrent_requests_keep_their_own_thread_through_nested_chains() -> None:
    current = threading.current_thread

    async def level(depth: int) -> list[threading.Thread]:
        await anyio.lowlevel.checkpoint()  # let the other requests interleave at every level
        return await bridge.sync_to_async(sync_level)(depth)

    def sync_level(depth: int) -> list[threading.Thread]:
        here = [current()]
        return here if depth == 0 else here + bridge.async_to_sync(level)(depth - 1)

    chains: list[list[threading.Thread]] = []

    async def request() -> None:
        async with bridge.ThreadSensitiveContext():
            chains.append(await level(3))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(request)
    assert all(len(set(chain)) == 1 for chain in chains)
    assert len({chain[0] for chain in chains}) == 20


@pytest.mark.anyio
async def test_async_to_sync_in_a_worker_runs_on_the_original_loop() -> None:
    outer = current_loop_identity()

    async def where() -> object:
        return current_loop_identity()

    for thread_sensitive in (True, False):
        inner = await bridge.sync_to_async(
            bridge.async_to_sync(where), thread_sensitive=thread_sensitive
        )()
        assert inner is outer


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_anyio_from_thread_without_token_inside_sync_to_async(thread_sensitive: bool) -> None:
    """Code migrated from asyncer/anyio keeps calling anyio.from_thread.run in the callee,
    on asyncio and trio alike: bridge's threads carry trio's thread-local token too."""
    outer = current_loop_identity()

    async def where() -> object:
        return current_loop_identity()

    def callee() -> object:
        return anyio.from_thread.run(where)

    assert await bridge.sync_to_async(callee, thread_sensitive=thread_sensitive)() is outer


@pytest.mark.anyio
async def test_async_to_sync_in_an_anyio_worker_thread_runs_on_the_original_loop() -> None:
    outer = current_loop_identity()

    async def where() -> object:
        return current_loop_identity()

    assert await anyio.to_thread.run_sync(bridge.async_to_sync(where)) is outer


@pytest.mark.parametrize("backend", [*BACKENDS, pytest.param("asyncio+uvloop", id="uvloop")])
def test_plain_threads_share_one_persistent_background_loop(backend: str) -> None:
    call = bridge.async_to_sync(lambda: _identity(), backend=backend)
    first = in_plain_thread(call)
    assert in_plain_thread(call) is first
    assert call() is first
    fresh = bridge.async_to_sync(lambda: _identity(), backend=backend, force_new_loop=True)
    assert in_plain_thread(fresh) is not first


async def _identity() -> object:
    return current_loop_identity()


@pytest.mark.anyio
async def test_async_to_sync_in_the_loop_thread_raises() -> None:
    with pytest.raises(RuntimeError, match="await the coroutine function directly"):
        bridge.async_to_sync(adouble)(1)


@pytest.mark.anyio
async def test_thread_sensitive_context_gives_each_scope_its_own_thread() -> None:
    current = threading.current_thread

    async def request() -> set[threading.Thread]:
        async with bridge.ThreadSensitiveContext():
            threads = {await bridge.sync_to_async(current)() for _ in range(3)}
            await anyio.sleep(0.01)  # let the other requests enter their contexts
            async with bridge.ThreadSensitiveContext():  # inner contexts do not split
                threads.add(await bridge.sync_to_async(current)())
            return threads

    results: list[set[threading.Thread]] = []

    async def run() -> None:
        results.append(await request())

    shared = await bridge.sync_to_async(current)()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(run)
    assert all(len(threads) == 1 for threads in results)
    threads = set().union(*results)
    assert len(threads) == 3
    assert shared not in threads


@pytest.mark.anyio
async def test_thread_sensitive_context_stops_its_thread_on_exit() -> None:
    async with bridge.ThreadSensitiveContext():
        thread = await bridge.sync_to_async(threading.current_thread)()
    await anyio.to_thread.run_sync(thread.join, 10)
    assert not thread.is_alive()


@pytest.mark.anyio
@pytest.mark.parametrize("scope", ["process", "context"])
async def test_a_call_that_would_deadlock_raises_instead(scope: str) -> None:
    """The thread-sensitive thread waits (outside async_to_sync) for a task that needs it."""
    token = anyio.lowlevel.current_token()

    async def needs_the_same_thread() -> str:
        return await bridge.sync_to_async(thread_name)()

    def waits_for_the_loop() -> str:
        return anyio.from_thread.run(needs_the_same_thread, token=token)

    async with contextlib.AsyncExitStack() as stack:
        if scope == "context":
            await stack.enter_async_context(bridge.ThreadSensitiveContext())
        with pytest.raises(RuntimeError, match="would deadlock"):
            await bridge.sync_to_async(waits_for_the_loop)()
        # the caller's own later calls are not affected
        assert await bridge.sync_to_async(thread_name)() != threading.current_thread().name


@pytest.mark.anyio
async def test_a_task_outliving_its_thread_sensitive_context_uses_the_shared_thread() -> None:
    current = threading.current_thread
    shared = await bridge.sync_to_async(current)()
    leave = anyio.Event()
    seen: list[threading.Thread] = []

    async def outlives_the_block() -> None:
        await leave.wait()
        seen.append(await bridge.sync_to_async(current)())

    async with anyio.create_task_group() as tg:
        async with bridge.ThreadSensitiveContext():
            inside = await bridge.sync_to_async(current)()
            tg.start_soon(outlives_the_block)  # inherits the context
        leave.set()
    assert inside is not shared
    assert seen == [shared]


# -- concurrency and limiters -------------------------------------------------------------


class Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.capacity = 0
        self.release = threading.Event()
        self.full = threading.Event()

    def fill_at(self, count: int) -> None:
        self.capacity = count

    def enter_and_wait(self) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            if self.now == self.capacity:
                self.full.set()
        self.release.wait(5)
        with self.lock:
            self.now -= 1
        return 1


@pytest.mark.anyio
async def test_injected_capacity_limiter_bounds_concurrent_calls() -> None:
    gauge = Gauge()
    gauge.fill_at(3)
    limiter = anyio.CapacityLimiter(3)
    call = bridge.sync_to_async(gauge.enter_and_wait, thread_sensitive=False, limiter=limiter)
    results: list[int] = []

    async def run() -> None:
        results.append(await call())

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(run)
        assert await anyio.to_thread.run_sync(gauge.full.wait, 10)
        await anyio.sleep(0.05)  # time enough for a fourth call to slip past the limiter
        gauge.release.set()
    assert len(results) == 30
    assert gauge.peak == 3


@pytest.mark.anyio
async def test_a_shared_limiter_serves_bridge_and_anyio_callers_alike() -> None:
    gauge = Gauge()
    limiter = anyio.CapacityLimiter(2)
    ours = bridge.sync_to_async(gauge.enter_and_wait, thread_sensitive=False, limiter=limiter)
    done: list[str] = []

    async def bridge_caller() -> None:
        await ours()
        done.append("bridge")

    async def anyio_caller() -> None:
        await anyio.to_thread.run_sync(gauge.enter_and_wait, limiter=limiter)
        done.append("anyio")

    gauge.release.set()  # calls return at once: the point is admission, not blocking
    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(bridge_caller if i % 3 else anyio_caller)
    assert sorted(done) == ["anyio"] * 20 + ["bridge"] * 40
    assert gauge.peak <= 2
    assert limiter.borrowed_tokens == 0


@pytest.mark.anyio
async def test_cancelling_a_call_waiting_for_the_limiter_never_runs_it() -> None:
    limiter = anyio.CapacityLimiter(1)
    hold, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        hold.wait(10)

    def never() -> None:
        ran.append("never")

    call_blocker = bridge.sync_to_async(blocker, thread_sensitive=False, limiter=limiter)
    call_never = bridge.sync_to_async(never, thread_sensitive=False, limiter=limiter)
    async with anyio.create_task_group() as tg:
        tg.start_soon(call_blocker)
        assert await anyio.to_thread.run_sync(started.wait, 10)  # it holds the only token
        with anyio.move_on_after(0.05) as scope:
            await call_never()
        assert scope.cancelled_caught
        hold.set()
    await bridge.sync_to_async(ran.append, thread_sensitive=False, limiter=limiter)("later")
    assert ran == ["later"]
    assert limiter.borrowed_tokens == 0


@pytest.mark.anyio
async def test_cancellations_under_a_saturated_limiter_leave_no_token_behind() -> None:
    limiter = anyio.CapacityLimiter(3)
    call = bridge.sync_to_async(threading.Event().wait, thread_sensitive=False, limiter=limiter)
    finished: list[int] = []

    async def caller(i: int) -> None:
        # every third caller is cancelled at once, every third after some scheduling
        deadline = 0.0 if i % 3 == 0 else (0.002 if i % 3 == 1 else 10.0)
        with anyio.move_on_after(deadline):
            await call(0.001)
            finished.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(150):
            tg.start_soon(caller, i)
    assert {i for i in range(150) if i % 3 == 2} <= set(finished)
    assert limiter.borrowed_tokens == 0
    assert limiter.statistics().tasks_waiting == 0
    # and the limiter still admits calls
    assert await bridge.sync_to_async(abs, thread_sensitive=False, limiter=limiter)(-1) == 1


def test_a_limiter_reused_by_a_new_loop_ignores_a_queue_left_by_an_ended_loop() -> None:
    """A module-level limiter outlives loops; a loop that ended with calls queued leaves none."""
    from bridge._loop import gate as _gate
    from bridge._loop.origin import origin_of
    from bridge._loop.threads import ThreadCall

    limiter = anyio.CapacityLimiter(1)
    ended = asyncio.new_event_loop()
    ended.close()
    origin = origin_of(ended)
    stale = _gate.Gate(limiter, origin)  # as if that loop ended before its queue drained
    stale.waiting.append(ThreadCall(abs, (-1,), {}, contextvars.Context(), None, origin))
    _gate._gates[id(limiter)] = stale
    try:

        async def later() -> list[int]:
            call = bridge.sync_to_async(abs, thread_sensitive=False, limiter=limiter)
            return [await call(-3), await call(-4)]

        assert asyncio.run(later()) == [3, 4]
        assert limiter.borrowed_tokens == 0
    finally:
        _gate._gates.pop(id(limiter), None)


@pytest.mark.anyio
async def test_many_concurrent_callers_get_their_own_results() -> None:
    sensitive = bridge.sync_to_async(double)
    pooled = bridge.sync_to_async(double, thread_sensitive=False)
    results: dict[int, int] = {}

    async def run(i: int) -> None:
        results[i] = await (sensitive if i % 2 else pooled)(i)

    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(run, i)
    assert results == {i: 2 * i for i in range(500)}


def test_many_threads_call_async_to_sync_at_once() -> None:
    call = bridge.async_to_sync(adouble)
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(call, range(400))) == [2 * i for i in range(400)]


@pytest.mark.anyio
async def test_sequential_calls_start_no_new_worker_thread() -> None:
    call = bridge.sync_to_async(threading.current_thread, thread_sensitive=False)
    first = await call()
    alive = {t for t in threading.enumerate() if t.name == first.name}
    threads = {await call() for _ in range(200)}
    # The pool's threads share one queue: any idle one may take a call, but a call
    # never starts a thread while one is free.
    assert threads <= alive


def worker_threads() -> int:
    return sum(thread.name == "bridge-sync-worker" for thread in threading.enumerate())


@pytest.mark.anyio
async def test_the_worker_threads_of_a_burst_do_not_outlive_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After 40 concurrent calls at most a few idle threads stay (not one per call)."""
    from bridge._loop import threads

    monkeypatch.setattr(threads, "_IDLE_SECONDS", 1000.0)  # only the idle bound retires
    burst = 40
    all_running = threading.Barrier(burst, timeout=20)  # one thread per call, all at once
    call = bridge.sync_to_async(
        all_running.wait, thread_sensitive=False, limiter=anyio.CapacityLimiter(burst)
    )
    async with anyio.create_task_group() as tg:
        for _ in range(burst):
            tg.start_soon(call)
    with anyio.fail_after(20):  # threads leaving after their last call: a hang check
        while worker_threads() > threads._MAX_IDLE:  # noqa: ASYNC110 - nothing else to wait on
            await anyio.sleep(0.01)
    assert await bridge.sync_to_async(abs, thread_sensitive=False)(-2) == 2  # still serves


@pytest.mark.anyio
async def test_custom_executor_runs_the_call() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="custom") as executor:
        name = await bridge.sync_to_async(thread_name, thread_sensitive=False, executor=executor)()
    assert name.startswith("custom")


# -- cancellation -----------------------------------------------------------------------


class Blocker:
    """A sync function that blocks until released and records that it ran to its end."""

    def __init__(self) -> None:
        self.started, self.proceed, self.finished = (threading.Event() for _ in range(3))
        self.thread: threading.Thread | None = None

    def __call__(self) -> str:
        self.thread = threading.current_thread()
        self.started.set()
        self.proceed.wait(20)
        self.finished.set()
        return "done"

    async def wait_started(self) -> None:
        assert await anyio.to_thread.run_sync(self.started.wait, 20)


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_cancel_raises_at_once_while_the_sync_function_runs_on(
    thread_sensitive: bool,
) -> None:
    """asgiref's rule: the awaiting task is cancelled now; the thread finishes on its own."""
    blocker = Blocker()
    reached_after = False
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_started() -> None:
                await blocker.wait_started()
                scope.cancel()

            tg.start_soon(cancel_when_started)
            await bridge.sync_to_async(blocker, thread_sensitive=thread_sensitive)()
            reached_after = True
    assert scope.cancelled_caught
    assert not reached_after
    assert not blocker.finished.is_set()  # the cancellation did not wait for the function
    blocker.proceed.set()
    assert await anyio.to_thread.run_sync(blocker.finished.wait, 20)


@pytest.mark.anyio
async def test_a_later_thread_sensitive_call_runs_after_the_abandoned_one_in_its_thread() -> None:
    blocker = Blocker()
    order: list[str] = []

    def later() -> threading.Thread:
        order.append("later" if blocker.finished.is_set() else "later-too-early")
        return threading.current_thread()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_started() -> None:
                await blocker.wait_started()
                scope.cancel()

            tg.start_soon(cancel_when_started)
            await bridge.sync_to_async(blocker)()
    assert scope.cancelled_caught
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, blocker.proceed.set)
        thread = await bridge.sync_to_async(later)()
    assert order == ["later"]
    assert thread is blocker.thread


@pytest.mark.anyio
async def test_the_coroutine_a_cancelled_call_waits_for_is_cancelled_too() -> None:
    """The sync function waits in async_to_sync for a coroutine of the caller's loop: the
    caller's cancellation reaches that coroutine, and async_to_sync raises CancelledError."""
    entered, seen = threading.Event(), []

    async def forever() -> None:
        entered.set()
        await anyio.sleep_forever()

    def sync_side() -> None:
        try:
            bridge.async_to_sync(forever)()
        except BaseException as error:
            seen.append(type(error))
            raise

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_entered() -> None:
                assert await anyio.to_thread.run_sync(entered.wait, 20)
                scope.cancel()

            tg.start_soon(cancel_when_entered)
            await bridge.sync_to_async(sync_side)()
    assert scope.cancelled_caught
    with anyio.fail_after(20):  # the thread gets the cancellation soon after the caller
        while not seen:  # noqa: ASYNC110 - set by the sync thread
            await anyio.sleep(0.01)
    assert seen == [asyncio.CancelledError]


@pytest.mark.anyio
async def test_an_abandoned_call_keeps_its_limiter_token_until_it_returns() -> None:
    limiter = anyio.CapacityLimiter(1)
    blocker = Blocker()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_started() -> None:
                await blocker.wait_started()
                scope.cancel()

            tg.start_soon(cancel_when_started)
            await bridge.sync_to_async(blocker, thread_sensitive=False, limiter=limiter)()
    assert scope.cancelled_caught
    assert limiter.borrowed_tokens == 1  # the thread still runs under it
    blocker.proceed.set()
    call = bridge.sync_to_async(blocker.finished.is_set, thread_sensitive=False, limiter=limiter)
    assert await call()  # admitted only once the abandoned call had returned
    with anyio.fail_after(10):  # the gate's pump gives back the token it waited for
        while limiter.borrowed_tokens:  # noqa: ASYNC110 - nothing to wait on but the count
            await anyio.sleep(0.01)


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_wait_on_cancel_lets_the_sync_function_finish_then_raises(
    thread_sensitive: bool,
) -> None:
    started, proceed, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        proceed.wait(10)
        finished.set()
        return "done"

    reached_after = False
    scope = anyio.CancelScope()

    async def cancel_when_started() -> None:
        await bridge.sync_to_async(started.wait, thread_sensitive=False)(10)
        scope.cancel()
        await anyio.sleep(0.05)  # the cancelled call must still be waiting for its thread
        assert not finished.is_set()
        proceed.set()

    call = bridge.sync_to_async(slow, thread_sensitive=thread_sensitive, wait_on_cancel=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_started)
        with scope:
            await call()
            reached_after = True
        assert finished.is_set()  # checked before the task group waits for the canceller
    assert scope.cancelled_caught
    assert not reached_after


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_native_asyncio_cancel_ends_the_task_while_the_thread_runs_on() -> None:
    blocker = Blocker()
    task = asyncio.create_task(bridge.sync_to_async(blocker)())
    await blocker.wait_started()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not blocker.finished.is_set()
    blocker.proceed.set()
    assert await anyio.to_thread.run_sync(blocker.finished.wait, 20)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_native_asyncio_cancel_with_wait_on_cancel_waits_for_the_thread() -> None:
    started, proceed, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        proceed.wait(10)
        finished.set()

    task = asyncio.create_task(bridge.sync_to_async(slow, wait_on_cancel=True)())
    await bridge.sync_to_async(started.wait, thread_sensitive=False)(10)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # a second cancel is absorbed as well
    assert not task.done()
    proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_coroutine_cancelled_before_its_first_step_releases_the_sync_thread() -> None:
    """A loop shutting down cancels every task, maybe one async_to_sync has just started
    and that never ran a step: the sync thread gets CancelledError instead of waiting on."""
    loop = asyncio.get_running_loop()
    armed, ran, seen = threading.Event(), [], []

    def cancel_the_next_task(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        if armed.is_set():
            armed.clear()
            task.cancel()
        return task

    async def never_runs() -> None:
        ran.append(True)

    def sync_side() -> None:
        armed.set()
        try:
            bridge.async_to_sync(never_runs)()
        except BaseException as error:
            seen.append(type(error))

    loop.set_task_factory(cancel_the_next_task)
    try:
        await bridge.sync_to_async(sync_side)()
    finally:
        loop.set_task_factory(None)
    assert seen == [asyncio.CancelledError]
    assert ran == []


# -- background loop lifecycle ------------------------------------------------------------


_RESTART_SCRIPT = """
import asyncio, threading
import bridge
from bridge._loop import portal as _portal

async def loop_of_call():
    return asyncio.get_running_loop()

def in_thread(fn):
    box = []
    thread = threading.Thread(target=lambda: box.append(fn()))
    thread.start()
    thread.join()
    return box[0]

call = bridge.async_to_sync(loop_of_call)
first = in_thread(call)
_portal.shutdown_background_portals()
second = in_thread(call)
assert second is not first, "the stopped loop was reused"
assert first.is_closed(), "the first loop was left open"
assert in_thread(call) is second, "the new loop was not kept"
print("ok")
"""


@pytest.mark.timeout(60)
def test_background_loop_restarts_after_shutdown() -> None:
    # In a fresh interpreter: stopping the shared loops mid-run would also stop the
    # lifespans other tests' adapters keep on them.
    done = subprocess.run(
        [sys.executable, "-c", _RESTART_SCRIPT],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# Python 3.12+ warns on fork() with threads running; forking such a process (gunicorn
# --preload, multiprocessing) is exactly what this test is about.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_its_own_loop_and_threads() -> None:
    parent_loop = bridge.async_to_sync(_identity)()
    parent_thread = asyncio.run(bridge.sync_to_async(threading.current_thread)())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            loop = bridge.async_to_sync(_identity)()
            thread = asyncio.run(bridge.sync_to_async(threading.current_thread)())
            ok = loop is not parent_loop and thread is not parent_thread and thread.is_alive()
            os.write(write_end, b"ok" if ok else b"stale")
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"ok"


@pytest.mark.anyio
async def test_calls_retain_no_memory() -> None:
    """Many calls both ways leave nothing behind (no per-call cycles or registries)."""
    sensitive = bridge.sync_to_async(double)
    pooled = bridge.sync_to_async(double, thread_sensitive=False)
    back = bridge.async_to_sync(adouble)

    async def round_trips(count: int) -> None:
        for i in range(count):
            await sensitive(i)
            await pooled(i)
            await bridge.sync_to_async(back)(i)

    await round_trips(200)  # warm up: threads, inboxes, caches
    gc.collect()
    tracemalloc.start()
    try:
        await round_trips(1000)
        gc.collect()
        retained, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert retained < 64 * 1024


def test_public_names_are_exported_from_bridge() -> None:
    import bridge.sync

    for name in bridge.sync.__all__:
        assert getattr(bridge, name) is getattr(bridge.sync, name)
        assert name in bridge.__all__
