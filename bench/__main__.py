"""`make bench`: run every benchmark (or those named on the command line).

`python -m bench NAME` runs one in this process. With no name, or several, each runs in a
process of its own, one after the other: a benchmark installs process-wide telemetry and may
leave a dev server's client behind, and none of that should reach the next one.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.stack import MachineCpu

# In the order the issue lists them: the harness's own costs first, then the gym's, then ingest.
BENCHMARKS = (
    "overhead",
    "throughput",
    "snapshots",
    "environments",
    "bisection",
    "webhooks",
    "store",
    "investigation",
)
RESULTS = Path(__file__).parent / "results"
QUIET_SAMPLE_S = 3.0
CALIBRATION_LOOPS = 10_000_000
CALIBRATION_ROUND_TRIPS = 50_000


def background_busy() -> float:
    """Share of the cores busy with others' work just before a benchmark: the machine is shared,
    and a figure measured while it was busy says so in its results."""
    machine = MachineCpu()
    time.sleep(QUIET_SAMPLE_S)
    return machine.share()


def calibration() -> dict[str, float]:
    """How fast this machine was, the best of three each: seconds of a fixed pure-Python loop
    (`loop_s`), and of round trips of one byte through a socket pair (`syscalls_s`, the kernel's
    share: git, SQLite, loopback HTTP). A shared host can run the same code twice as slowly on
    another day without showing any other process busy here, so absolute figures compare only
    at similar values; the ratios, measured side by side, hold either way."""

    def loop() -> None:
        total = 0
        for i in range(CALIBRATION_LOOPS):
            total += i

    def syscalls() -> None:
        a, b = socket.socketpair()
        with a, b:
            for _ in range(CALIBRATION_ROUND_TRIPS):
                a.send(b"x")
                b.recv(1)

    def best(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return round(min(times), 3)

    return {"loop_s": best(loop), "syscalls_s": best(syscalls)}


def note_machine(name: str, busy: float, speed: dict[str, float]) -> None:
    path = RESULTS / f"{name}.json"
    if path.exists():
        results = json.loads(path.read_text())
        results["background_cores_busy_before"] = round(busy, 3)
        results["calibration"] = speed
        path.write_text(json.dumps(results, indent=2) + "\n")


def run_one(name: str) -> int:
    busy, speed = background_busy(), calibration()
    loop_s, syscalls_s = speed["loop_s"], speed["syscalls_s"]
    print(f"=== python -m bench {name}  (cores busy before: {busy:.0%}; calibration: loop "
          f"{loop_s:.2f} s, syscalls {syscalls_s:.2f} s)", flush=True)  # fmt: skip
    try:
        importlib.import_module(f"bench.{name}").main()
    except Exception:
        traceback.print_exc()
        return 1
    note_machine(name, busy, speed)
    return 0


def main() -> None:
    names = sys.argv[1:] or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    if len(names) == 1:
        code = run_one(names[0])
    else:
        started, failed = time.perf_counter(), []
        for name in names:
            ran = time.perf_counter()
            if subprocess.call([sys.executable, "-m", "bench", name]) != 0:
                failed.append(name)
            print(f"=== {name}: {time.perf_counter() - ran:.0f} s\n", flush=True)
        print(f"all benchmarks: {time.perf_counter() - started:.0f} s", flush=True)
        if failed:
            print(f"FAILED: {', '.join(failed)}", flush=True)
        code = 1 if failed else 0
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter teardown: the Temporal client can abort at exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
