"""The multisection planner alone: rounds, skips and verdicts on synthetic histories."""

from __future__ import annotations

import math

import pytest

from contracts.bisect import Multisection


def run(
    n: int, first_bad: int, k: int, skip: set[int] = frozenset()
) -> tuple[Multisection, int, int]:  # type: ignore[assignment]
    commits = [f"c{i}" for i in range(n)]
    search = Multisection(commits, k=k)
    rounds = probes = 0
    while not search.done():
        batch = search.next_probes()
        assert 0 < len(batch) <= k
        rounds += 1
        probes += len(batch)
        for sha in batch:
            i = int(sha[1:])
            search.record(sha, "skip" if i in skip else ("bad" if i >= first_bad else "good"))
    return search, rounds, probes


@pytest.mark.parametrize("first_bad", [1, 2, 57, 123, 199])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_finds_the_first_bad_commit(first_bad: int, k: int) -> None:
    search, rounds, _ = run(200, first_bad, k)
    assert search.verdict() == (f"c{first_bad}", "high", [])
    assert rounds <= math.ceil(math.log(199, k + 1)) + 1


def test_more_probes_mean_fewer_rounds() -> None:
    sequential = max(run(1000, b, 1)[1] for b in (3, 400, 997))
    parallel = max(run(1000, b, 3)[1] for b in (3, 400, 997))
    assert sequential >= 10 and parallel <= 6


def test_skipped_commits_lower_the_confidence_and_are_named() -> None:
    search, _, _ = run(50, 20, 3, skip={18, 19})
    culprit, confidence, others = search.verdict()
    assert culprit == "c18" and confidence.startswith("low: 3 candidate")
    assert others == ["c19", "c20"]
    clean, _, _ = run(50, 20, 3, skip={5, 30})
    assert clean.verdict() == ("c20", "high", [])
