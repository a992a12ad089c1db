"""`make bench`: run every benchmark (or those named on the command line)."""

from __future__ import annotations

import sys

from bench import bisection, snapshots

BENCHMARKS = {"snapshots": snapshots.main, "bisection": bisection.main}


def main() -> None:
    names = sys.argv[1:] or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
