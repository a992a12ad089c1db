"""The probe planner alone, on simulated cores: each probe takes its commit's time, a free core
takes the planner's next pick at once; verdicts, checks, cancellations and re-runs."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import pytest

from contracts.bisect import Multisection
from contracts.planner import AGAIN, CONFIRM, GOOD, RECHECK, SEARCH, Contradiction, Pick, ProbePlan

Outcome = Callable[[int, int], str]
"""(commit index, how many times it was probed before) → outcome."""


def regression(first_bad: int) -> Outcome:
    return lambda i, _: "bad" if i >= first_bad else "good"


class Simulation:
    def __init__(self, n: int, outcome: Outcome, cores: int, checks: list[str],
                 cost: Callable[[int], float] = lambda i: 1.0) -> None:  # fmt: skip
        self.commits = [f"c{i}" for i in range(n)]
        section = Multisection(self.commits, k=cores)
        section.record(self.commits[-1], "bad")
        self.plan = ProbePlan(section, list(checks))
        self.outcome, self.cores, self.cost = outcome, cores, cost
        self.started: list[tuple[float, str, str]] = []
        self.cancelled: list[str] = []
        self.seen: dict[int, int] = {}

    def run(self) -> tuple[float, Contradiction | None]:
        """(the time the culprit was determined, or the check that stopped the search)."""
        now, key = 0.0, 0
        flying: list[tuple[float, int, int]] = []  # a heap of (end, key, index)
        while not self.plan.determined():
            for pick in self.plan.picks(self.cores - len(self.plan.running)):
                key += 1
                index = self.commits.index(pick.sha)
                self.plan.started(key, pick)
                self.started.append((now, pick.sha, pick.purpose))
                heapq.heappush(flying, (now + self.cost(index), key, index))
            if not self.plan.running:
                break
            end, done, index = heapq.heappop(flying)
            if done not in self.plan.running:  # cancelled earlier
                continue
            now = end
            seen = self.seen.get(index, 0)
            self.seen[index] = seen + 1
            if (stop := self.plan.finished(done, self.outcome(index, seen))) is not None:
                return now, stop
            moot = {key: self.plan.running[key].sha for key in self.plan.moot()}
            assert self.plan.drop_moot() == list(moot)
            self.cancelled += moot.values()
        return now, None


@pytest.mark.parametrize("n", [2, 3, 6, 11, 31, 101, 1001])
@pytest.mark.parametrize("cores", [1, 2, 4])
def test_names_the_first_bad_commit_everywhere(n: int, cores: int) -> None:
    for first_bad in sorted({1, n // 3, (n * 61) // 100, n - 1} - {0}):
        sim = Simulation(n, regression(first_bad), cores, [CONFIRM, CONFIRM, GOOD])
        took, stop = sim.run()
        assert stop is None
        assert sim.plan.section.verdict() == (f"c{first_bad}", "high", [])
        searched = sum(1 for *_, purpose in sim.started if purpose == SEARCH)
        # Never more search probes than plain bisection needs, plus one per extra core a round.
        assert searched <= math.ceil(math.log2(n)) + cores * math.ceil(took)


def test_one_core_is_plain_bisection_and_the_culprit_once_more() -> None:
    sim = Simulation(1001, regression(600), 1, [CONFIRM, GOOD])
    took, _ = sim.run()
    searched = [sha for _, sha, purpose in sim.started if purpose == SEARCH]
    assert len(searched) == 10  # log2 of 1,000 untested commits
    # Its failure seen twice and its parent passing is all the verdict needs: the bad end and
    # the good ref are neither the culprit nor its parent, so they are not checked.
    assert [purpose for *_, purpose in sim.started if purpose != SEARCH] == [AGAIN]
    assert took == len(searched) + 1


def test_probes_started_together_cut_the_range_into_equal_parts() -> None:
    sim = Simulation(1001, regression(610), 3, [])
    assert [p.sha for p in sim.plan.picks(3)] == ["c250", "c500", "c750"]


def test_two_cores_are_never_slower_than_bisection_with_the_checks() -> None:
    """git bisect takes the good and bad commits and every failure on trust: log2(n) probes one
    after another. On two cores the planner also sees the culprit fail twice and checks the
    ends where they matter, wherever the culprit is, in no more probe times."""
    for n in (6, 11, 31, 101, 1001):
        bisect_time = math.ceil(math.log2(n - 1))
        for first_bad in sorted({1, 2, n // 3, (n * 61) // 100, n - 2, n - 1}):
            sim = Simulation(n, regression(first_bad), 2, [CONFIRM, CONFIRM, GOOD])
            took, _ = sim.run()
            assert took <= bisect_time, (n, first_bad, took, bisect_time)
    # Probes started together cut in thirds: 8 probe times at 1,000 commits, not 10.
    assert Simulation(1001, regression(610), 2, [CONFIRM, CONFIRM, GOOD]).run()[0] <= 8
    sim = Simulation(1001, regression(610), 4, [CONFIRM, GOOD])
    assert sim.run()[0] <= 0.5 * math.ceil(math.log2(1000)) + 1


def test_checks_run_where_they_matter_and_stop_the_search_when_they_do_not_hold() -> None:
    # Every commit passes: the bad end is the culprit so far, and its confirmation fails.
    not_bad = Simulation(31, lambda i, seen: "good", 2, [CONFIRM, CONFIRM, GOOD])
    _, stop = not_bad.run()
    assert stop is not None and stop.pick.purpose == CONFIRM and stop.pick.sha == "c30"
    assert GOOD not in [purpose for *_, purpose in not_bad.started]
    # Every commit fails: the good ref is the culprit's parent, and its check fails.
    not_good = Simulation(31, lambda i, seen: "bad", 2, [CONFIRM, GOOD])
    _, stop = not_good.run()
    assert stop is not None and stop.pick.purpose == GOOD and stop.pick.sha == "c0"
    # The culprit right after the good ref: the good ref's check is part of the verdict.
    first = Simulation(31, regression(1), 2, [CONFIRM, GOOD])
    assert first.run()[1] is None and first.plan.section.verdict()[0] == "c1"
    assert GOOD in [purpose for *_, purpose in first.started]


def test_probes_that_cannot_change_the_culprit_are_cancelled() -> None:
    # The two first probes cut c1..c5 in three: c2 and c4. c4 is slow; once c2 fails, c4 cannot
    # move the culprit and is cancelled rather than waited for.
    sim = Simulation(7, regression(2), 2, [], cost=lambda i: 10.0 if i == 4 else 1.0)
    took, _ = sim.run()
    assert [sha for _, sha, _ in sim.started[:2]] == ["c2", "c4"]
    assert sim.plan.section.verdict()[0] == "c2"
    assert sim.cancelled == ["c4"] and took == 2


def contradicted(sim: Simulation) -> None:
    """c20 and c30 probed side by side; c30 passes, then c20 fails: a contradiction."""
    sim.plan.started(-1, Pick("c20", SEARCH, 1))
    sim.plan.started(-2, Pick("c30", SEARCH, 1))
    assert sim.plan.finished(-2, "good") is None
    assert sim.plan.finished(-1, "bad") is None
    assert "c20" not in sim.plan.section.results  # not trusted yet
    sim.seen[20] = 1


def test_an_inconsistent_result_is_probed_again_before_it_counts() -> None:
    sim = Simulation(61, regression(40), 1, [])  # c20 failed once: flaky, before the culprit
    contradicted(sim)
    sim.run()
    assert sim.started[0][1:] == ("c20", RECHECK)
    assert sim.plan.section.results["c20"] == "skip"  # a failure, then a pass: flaky
    assert sim.plan.section.verdict()[0] == "c40"


def test_a_result_inconsistent_twice_is_a_skip() -> None:
    outcome = regression(40)
    sim = Simulation(61, lambda i, seen: "bad" if i == 20 else outcome(i, seen), 1, [])
    contradicted(sim)
    sim.run()
    assert sim.plan.section.results["c20"] == "skip"
    assert sim.plan.section.verdict()[0] == "c40"
