"""The performance comparison on real runs of a real command, and the statistics under it."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from gym.perf import compare, mann_whitney_greater, measure_value, sample
from gym.runner import Limits
from tests.utils.envs import sealed


def brute_force_p(patched: list[float], base: list[float]) -> float:
    """Every way of splitting the pooled values: the definition the exact test must match."""
    pooled = patched + base
    observed = sum(p > b for p in patched for b in base)
    splits = list(combinations(range(len(pooled)), len(patched)))
    hits = 0
    for chosen in splits:
        first = [pooled[i] for i in chosen]
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += sum(p > b for p in first for b in rest) >= observed
    return hits / len(splits)


def test_exact_mann_whitney_matches_brute_force() -> None:
    patched, base = [5.0, 7.0, 8.0, 9.5], [1.0, 2.0, 6.0, 3.0, 4.0]
    assert abs(mann_whitney_greater(patched, base) - brute_force_p(patched, base)) < 1e-12
    assert mann_whitney_greater([10, 11, 12, 13, 14], [1, 2, 3, 4, 5]) == 1 / 252


def test_compare_needs_both_size_and_significance() -> None:
    slow = compare([1.0, 1.01, 0.99, 1.0, 1.02], [1.5, 1.52, 1.49, 1.51, 1.5], max_slowdown=0.05)
    assert slow.slower and 1.45 < slow.ratio < 1.55 and slow.p_value < 0.01
    tiny = compare([1.0, 1.01, 0.99, 1.0, 1.02], [1.02, 1.03, 1.01, 1.02, 1.04], max_slowdown=0.05)
    assert not tiny.slower  # significant but inside the 5% budget
    noisy = compare([1.0, 2.0, 1.0, 2.0], [1.1, 2.1, 1.0, 2.2], max_slowdown=0.05)
    assert not noisy.slower  # over budget by the median but not significant


def test_measure_value_prefers_the_benchmarks_own_figure() -> None:
    assert measure_value(b"warming up\n0.125 s\n", 3.0) == (0.125, "reported")
    assert measure_value(b"done\n", 3.0) == (3.0, "wall-clock s")


async def test_a_planted_slowdown_is_found_side_by_side(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for ws, n in ((fast, 20_000), (slow, 400_000)):
        ws.mkdir()
        (ws / "bench.py").write_text(
            "import time\nt = time.perf_counter()\n"
            f"sum(i * i for i in range({n}))\nprint(time.perf_counter() - t)\n"
        )
    samples = await sample(
        "python bench.py", fast, slow, runs=5, limits=Limits(timeout_s=60), sandbox=sealed()
    )
    assert samples.unit == "reported" and not samples.failures
    verdict = compare(samples.base, samples.patched, max_slowdown=0.05)
    assert verdict.slower, verdict.detail
    assert not compare(samples.patched, samples.base, max_slowdown=0.05).slower


GO_BENCH = (
    'package calc\n\nimport "testing"\n\n'
    "func work(n int) int { s := 0; for i := 0; i < n; i++ { s += i * i }; return s }\n\n"
    "var sink int\n\nfunc BenchmarkWork(b *testing.B) {\n"
    "\tfor i := 0; i < b.N; i++ { sink = work(N) }\n}\n"
)


async def test_go_s_own_ns_per_op_is_the_figure_and_a_planted_slowdown_is_found(
    tmp_path: Path,
) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for ws, n in ((fast, 2_000), (slow, 40_000)):
        ws.mkdir()
        (ws / "go.mod").write_text("module example.com/calc\n\ngo 1.19\n")
        (ws / "calc_test.go").write_text(GO_BENCH + f"\nconst N = {n}\n")
    samples = await sample(
        "go test -run '^$' -bench . -benchtime 2000x", fast, slow, runs=5,
        limits=Limits(timeout_s=300), sandbox=sealed(),
    )  # fmt: skip
    assert samples.unit == "ns/op" and not samples.failures, samples
    verdict = compare(samples.base, samples.patched, max_slowdown=0.05)
    assert verdict.slower and verdict.ratio > 5, verdict.detail


def test_libtest_s_bench_lines_are_read_per_iteration() -> None:
    output = b"test tests::a ... bench:       1,234 ns/iter (+/- 56)\ntest result: ok.\n"
    assert measure_value(output, 3.0) == (1234.0, "ns/op")
