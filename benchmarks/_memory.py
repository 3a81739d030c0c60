"""Peak memory of one run, for the adapter benchmarks' memory cases.

Each case runs in a child process of its own (a clean heap), which prints one
JSON line; :func:`child_result` starts it and reads that line back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

__all__ = ("child_result", "peak_growth")

T = TypeVar("T")


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_growth(run: Callable[[], T]) -> tuple[int, T, bool]:
    """``(peak RSS growth in bytes, run's result, whether the kernel's high-water mark
    was used)``: RSS is sampled every millisecond while ``run()`` runs, and where
    Linux lets the high-water mark be reset, it also catches peaks between samples."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    hwm_reset = _reset_hwm()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.001):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run()
    finally:
        stop.set()
        sampler.join()
    if hwm_reset:
        peak = max(peak, _vm_hwm())
    return peak - baseline, result, hwm_reset


def child_result(script: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run ``script --memory-child *args`` and return the JSON its last line prints."""
    out = subprocess.run(
        [sys.executable, script, "--memory-child", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
