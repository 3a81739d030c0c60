"""Per-call overhead of bridge.sync_to_async / async_to_sync against their peers.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/bench_sync.py [--rounds 7] [--calls 2000]

Every case does the same trivial call; cases are interleaved in a shuffled order in each
round; the median and the best round are reported in microseconds per call, with ratios
against the peers measured in the same run (the machine is noisy: compare within a run;
the best round is the least disturbed by other processes).

* ``sync_to_async``: one task calling sequentially, then 64 tasks at once, on asyncio;
  peers are asgiref (both thread-sensitive modes), ``anyio.to_thread.run_sync`` and
  ``loop.run_in_executor``. bridge and anyio are also measured on trio.
* ``async_to_sync`` from plain threads: one thread calling sequentially, then 8 threads
  at once; peers are asgiref, ``asyncio.run_coroutine_threadsafe`` on a long-lived loop
  and anyio's blocking portal (``BlockingPortal.call``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from asgiref import sync as asgiref_sync

import bridge
from bridge._loop import portal as _portal

Case = Callable[[int], float]  # calls -> seconds taken


def noop() -> None:
    return None


async def anoop() -> None:
    return None


# -- sync_to_async ----------------------------------------------------------------------


def async_callers(backend: str, make: Callable[[], Callable[[], Awaitable[Any]]]) -> Any:
    def sequential(calls: int) -> float:
        async def main() -> float:
            call = make()
            await call()  # warm threads and limiters up
            start = time.perf_counter()
            for _ in range(calls):
                await call()
            return time.perf_counter() - start

        result: float = anyio.run(main, backend=backend)
        return result

    def concurrent(calls: int) -> float:
        async def main() -> float:
            call = make()
            per_task = calls // 64

            async def worker() -> None:
                for _ in range(per_task):
                    await call()

            await call()
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(64):
                    tg.start_soon(worker)
            return time.perf_counter() - start

        result: float = anyio.run(main, backend=backend)
        return result

    return sequential, concurrent


def run_in_executor() -> Callable[[], Awaitable[None]]:
    loop = asyncio.get_running_loop()
    return lambda: loop.run_in_executor(None, noop)


def anyio_thread() -> Callable[[], Awaitable[None]]:
    return lambda: anyio.to_thread.run_sync(noop)


SYNC_TO_ASYNC: dict[str, tuple[str, Callable[[], Callable[[], Awaitable[Any]]]]] = {
    "bridge ts=True": ("asyncio", lambda: bridge.sync_to_async(noop)),
    "bridge ts=False": ("asyncio", lambda: bridge.sync_to_async(noop, thread_sensitive=False)),
    "asgiref ts=True": ("asyncio", lambda: asgiref_sync.sync_to_async(noop)),
    "asgiref ts=False": (
        "asyncio",
        lambda: asgiref_sync.sync_to_async(noop, thread_sensitive=False),
    ),
    "anyio.to_thread": ("asyncio", anyio_thread),
    "run_in_executor": ("asyncio", run_in_executor),
    "bridge ts=True [trio]": ("trio", lambda: bridge.sync_to_async(noop)),
    "bridge ts=False [trio]": ("trio", lambda: bridge.sync_to_async(noop, thread_sensitive=False)),
    "anyio.to_thread [trio]": ("trio", anyio_thread),
}


# -- async_to_sync ----------------------------------------------------------------------


class LongLivedLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self) -> None:
        asyncio.run_coroutine_threadsafe(anoop(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def thread_callers(call: Callable[[], Any]) -> tuple[Case, Case]:
    def sequential(calls: int) -> float:
        result: list[float] = []

        def run() -> None:
            call()
            start = time.perf_counter()
            for _ in range(calls):
                call()
            result.append(time.perf_counter() - start)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return result[0]

    def concurrent(calls: int) -> float:
        per_thread = calls // 8
        barrier = threading.Barrier(9)

        def run() -> None:
            call()
            barrier.wait()
            for _ in range(per_thread):
                call()

        threads = [threading.Thread(target=run) for _ in range(8)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start

    return sequential, concurrent


def build_cases(long_lived: LongLivedLoop) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, (backend, make) in SYNC_TO_ASYNC.items():
        sequential, concurrent = async_callers(backend, make)
        cases[f"sync_to_async seq  | {name}"] = sequential
        cases[f"sync_to_async x64  | {name}"] = concurrent
    portal = _portal.background_portal("asyncio")
    peers: dict[str, Callable[[], Any]] = {
        "bridge": bridge.async_to_sync(anoop),
        "asgiref": asgiref_sync.async_to_sync(anoop),
        "run_coroutine_threadsafe": long_lived.call,
        "anyio portal.call": lambda: portal.call(anoop),
    }
    for name, call in peers.items():
        sequential, concurrent = thread_callers(call)
        cases[f"async_to_sync seq  | {name}"] = sequential
        cases[f"async_to_sync x8   | {name}"] = concurrent
    return cases


def calls_for(name: str, calls: int) -> int:
    return calls // 4 if "asgiref" in name and "async_to_sync" in name else calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2048)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    long_lived = LongLivedLoop()
    cases = {name: case for name, case in build_cases(long_lived).items() if args.only in name}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for _ in range(args.rounds):
        random.shuffle(names)
        for name in names:
            calls = calls_for(name, args.calls)
            samples[name].append(cases[name](calls) / calls * 1e6)
    long_lived.close()
    print(f"{'case':58} {'median':>9} {'best':>9}  (us/call)")
    for name in sorted(samples):
        values = samples[name]
        print(f"{name:58} {statistics.median(values):9.1f} {min(values):9.1f}")
    if len(samples) < len(cases) or args.only:
        return  # a partial run: no ratios
    for label, pick in (("median", statistics.median), ("best", min)):
        print(f"\nratios of the {label} over {args.rounds} rounds (lower is better for bridge):")
        report({name: pick(values) for name, values in samples.items()})


def report(us: dict[str, float]) -> None:
    for mode in ("seq  ", "x64  "):
        base = us[f"sync_to_async {mode}| run_in_executor"]
        for flavour in ("ts=True", "ts=False"):
            ours = us[f"sync_to_async {mode}| bridge {flavour}"]
            asgi = us[f"sync_to_async {mode}| asgiref {flavour}"]
            print(
                f"  sync_to_async {mode.strip():4} bridge {flavour:9}: "
                f"{ours / base:5.2f}x run_in_executor, {ours / asgi:5.2f}x asgiref, "
                f"{ours / us[f'sync_to_async {mode}| anyio.to_thread']:5.2f}x anyio"
            )
        trio = us[f"sync_to_async {mode}| bridge ts=False [trio]"]
        anyio_trio = us[f"sync_to_async {mode}| anyio.to_thread [trio]"]
        print(f"  sync_to_async {mode.strip():4} trio ts=False   : {trio / anyio_trio:5.2f}x anyio")
    for mode in ("seq  ", "x8   "):
        ours = us[f"async_to_sync {mode}| bridge"]
        print(
            f"  async_to_sync {mode.strip():4} bridge          : "
            f"{ours / us[f'async_to_sync {mode}| asgiref']:5.2f}x asgiref, "
            f"{ours / us[f'async_to_sync {mode}| run_coroutine_threadsafe']:5.2f}x "
            f"run_coroutine_threadsafe, "
            f"{ours / us[f'async_to_sync {mode}| anyio portal.call']:5.2f}x anyio portal"
        )


if __name__ == "__main__":
    main()
