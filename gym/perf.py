"""Performance: run a benchmark command at two snapshots, several times each, and compare the
distributions (median ratio and a one-sided Mann-Whitney U test), never single numbers.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gym.runner import Limits, run_command
from gym.sandbox import Sandbox


@dataclass(frozen=True)
class Comparison:
    base_median: float
    patched_median: float
    ratio: float
    p_value: float
    slower: bool
    """Significantly slower by more than the allowed slowdown."""
    detail: str


# `go test -bench`'s "BenchmarkX-2  1000  1234 ns/op" and libtest's "test x ... bench:
# 1,234 ns/iter (+/- 56)": the runners' own figures, per operation.
_PER_OP = re.compile(rb"^Benchmark\S*\s+\d+\s+([\d.]+) ns/op|bench:\s+([\d,.]+) ns/iter", re.M)


def measure_value(output: bytes, duration_s: float) -> tuple[float, str]:
    """The benchmark's own figure: Go's or libtest's ns per operation (summed over the
    benchmarks), else a number on its last line, else the command's wall time."""
    per_op = [float((go or rust).replace(b",", b"")) for go, rust in _PER_OP.findall(output)]
    if per_op:
        return sum(per_op), "ns/op"
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    if lines:
        try:
            return float(lines[-1].split()[0]), "reported"
        except ValueError:
            pass
    return duration_s, "wall-clock s"


@cache
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many arrangements of m and n items give each value of U (exact null distribution)."""
    if m == 0 or n == 0:
        return (1,)
    with_last_of_first = _u_counts(m - 1, n)  # the largest item is from the first sample: +n
    with_last_of_second = _u_counts(m, n - 1)
    size = m * n + 1
    counts = [0] * size
    for u, c in enumerate(with_last_of_first):
        counts[u + n] += c
    for u, c in enumerate(with_last_of_second):
        counts[u] += c
    return tuple(counts)


def mann_whitney_greater(patched: list[float], base: list[float]) -> float:
    """One-sided p-value that `patched` tends to be larger than `base` (exact, mid-ranks)."""
    m, n = len(patched), len(base)
    if not m or not n:
        return 1.0
    u = sum((p > b) + 0.5 * (p == b) for p in patched for b in base)
    counts = _u_counts(m, n)
    total = sum(counts)
    at_least = sum(c for value, c in enumerate(counts) if value >= u)
    return at_least / total


def compare(
    base: list[float], patched: list[float], *, max_slowdown: float, alpha: float = 0.05
) -> Comparison:
    base_median, patched_median = statistics.median(base), statistics.median(patched)
    ratio = patched_median / base_median if base_median > 0 else float("inf")
    p_value = mann_whitney_greater(patched, base)
    slower = ratio > 1 + max_slowdown and p_value < alpha
    detail = (
        f"median {patched_median:.4g} vs {base_median:.4g} at baseline ({ratio:.3f}x; "
        f"budget {1 + max_slowdown:.3f}x), one-sided Mann-Whitney p={p_value:.3g} "
        f"over {len(patched)}+{len(base)} runs"
    )
    return Comparison(base_median, patched_median, ratio, p_value, slower, detail)


@dataclass(frozen=True)
class Samples:
    base: list[float]
    patched: list[float]
    unit: str
    failures: list[str]


async def sample(
    command: str, base_ws: Path, patched_ws: Path, *, runs: int, limits: Limits, sandbox: Sandbox
) -> Samples:
    """Interleave the runs (base, patched, base, ...) so drift in the machine hits both alike."""
    values: dict[str, list[float]] = {"base": [], "patched": []}
    unit, failures = "", []
    for _ in range(runs):
        for label, ws in (("base", base_ws), ("patched", patched_ws)):
            result = await run_command(command, ws, limits=limits, sandbox=sandbox)
            if result.exit_code != 0:
                failures.append(f"{label} exited {result.exit_code}")
                continue
            value, unit = measure_value(result.output, result.duration_s)
            values[label].append(value)
    return Samples(values["base"], values["patched"], unit, failures)
