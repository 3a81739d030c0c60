"""Peak memory of a server process, sampled while a test streams through it."""

from __future__ import annotations

import threading

import psutil


class PeakRss:
    """Samples a process's RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.002) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
