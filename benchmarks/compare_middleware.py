"""bench_middleware.py over two or more checkouts, run after one another in turns.

Each run is a fresh process with ``PYTHONPATH`` set to one checkout; the checkouts
take turns (A B A B ...), so a change in the machine's load falls on all of them.
Per checkout, the minimum over every sample of every run is taken, for the bare
app and for each middleware; the table gives each middleware's added µs per
request (its minimum minus the bare app's) per checkout, and the difference of
each checkout from the first.

    python benchmarks/compare_middleware.py --runs 3 base=/work/wt-base new=$PWD

Options after ``--`` go to bench_middleware.py (default ``--rounds 150 --seconds 0.003
--stat min``: many short batches, whose minimum is steadier on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).with_name("bench_middleware.py")
#: The rows of the table, in this order (peers are measured too, but not shown).
SHOWN = (
    "bridge ProxyHeaders",
    "bridge SecurityHeaders",
    "bridge CustomHeaders",
    "bridge RequestBuffering",
    "bridge RateLimit",
)
DEFAULT_ARGS = ["--rounds", "150", "--seconds", "0.003", "--stat", "min"]
APPS = ("bare WSGI hello", "Flask hello", "bare ASGI hello", "Starlette hello")


def run_once(checkout: str, bench_args: list[str]) -> dict[tuple[str, str], list[float]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": checkout}
        command = [sys.executable, str(BENCH), *bench_args, "--json", out.name]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, cwd=checkout)
        rows = json.loads(Path(out.name).read_text())
    return {(app, name): values for app, name, values in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per checkout")
    parser.add_argument("checkouts", nargs="+", metavar="LABEL=PATH")
    args, rest = parser.parse_known_args()
    bench_args = [a for a in rest if a != "--"] or DEFAULT_ARGS
    checkouts = dict(item.split("=", 1) for item in args.checkouts)
    best: dict[str, dict[tuple[str, str], float]] = {label: {} for label in checkouts}
    for turn in range(args.runs):
        for label, path in checkouts.items():
            print(f"run {turn + 1}/{args.runs}: {label} ({path})", file=sys.stderr, flush=True)
            for key, values in run_once(path, bench_args).items():
                best[label][key] = min(best[label].get(key, float("inf")), *values)
    labels = list(checkouts)
    first = labels[0]
    print(f"added µs per request, min of {args.runs} runs per checkout ({' '.join(bench_args)})")
    header = " | ".join([*labels, *(f"{label} - {first}" for label in labels[1:])])
    print(f"\n| app | middleware | {header} |")
    print("|" + " --- |" * (2 + len(labels) * 2 - 1))
    for app in APPS:
        for name in SHOWN:
            added = {
                label: best[label][(app, name)] - best[label][(app, "bare")] for label in labels
            }
            cells = [f"{added[label]:.2f}" for label in labels]
            cells += [f"{added[label] - added[first]:+.2f}" for label in labels[1:]]
            print(f"| {app} | {name.removeprefix('bridge ')} | {' | '.join(cells)} |")
    print("\nbare app µs per request: ", end="")
    print(
        "; ".join(
            f"{label}: " + ", ".join(f"{app} {best[label][(app, 'bare')]:.2f}" for app in APPS)
            for label in labels
        )
    )


if __name__ == "__main__":
    main()
