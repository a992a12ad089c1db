"""The probe planner of an investigation (pure and deterministic: workflow-safe).

Probes start one at a time as cores free up, not in rounds: each new search probe goes to the
middle of the widest stretch of untested commits between the bounds and the probes in flight,
so c probes at once cut the range like a c-way multisection, and no core waits for the slowest
probe of a round. The checks `git bisect` takes on trust (the bad commit once more, so a flaky
failure is not bisected; the good ref) run beside the search, one for each search probe, and a
result that contradicts them ends the search. The culprit is determined as soon as the checks
are in and no untested commit is left between the last good and the first bad commit; probes
still running then, and probes of commits outside the bounds, cannot change it and are
cancelled. A result that contradicts another (a good commit after a bad one) is probed again
before it is trusted; a second contradiction makes it a skip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from workflows.bisect import Multisection

SEARCH, RECHECK, CONFIRM, GOOD = "search", "recheck", "confirm", "good"


@dataclass(frozen=True)
class Pick:
    sha: str
    purpose: str
    """SEARCH, RECHECK (a search result probed again), CONFIRM (the bad commit again) or GOOD
    (the good ref)."""
    round: int
    """1 + the highest round among the results known when it was picked."""


@dataclass(frozen=True)
class Contradiction:
    """A check that did not hold: the search stops."""

    pick: Pick


@dataclass
class ProbePlan:
    section: Multisection
    checks: list[str] = field(default_factory=list)
    """The checks still to start (CONFIRM, GOOD), in order."""
    running: dict[int, Pick] = field(default_factory=dict)
    rechecks: list[str] = field(default_factory=list)
    """Commits whose result contradicted another's: probed again before they are trusted."""
    rechecked: set[str] = field(default_factory=set)
    round: int = 0
    """The highest round of a result so far."""
    searched: int = 0
    checked: int = 0

    def next(self) -> Pick | None:
        """What to probe on a core that is free now (None: nothing useful)."""
        if self.rechecks:
            return self._pick(self.rechecks.pop(0), RECHECK)
        search = self._search()
        if self.checks and (search is None or self.checked < self.searched):
            self.checked += 1
            kind = self.checks.pop(0)
            sha = self.section.commits[0] if kind == GOOD else self.section.commits[-1]
            return self._pick(sha, kind)
        if search is None:
            return None
        self.searched += 1
        return self._pick(search, SEARCH)

    def started(self, key: int, pick: Pick) -> None:
        self.running[key] = pick

    def finished(self, key: int, outcome: str) -> Contradiction | None:
        pick = self.running.pop(key)
        self.round = max(self.round, pick.round)
        expected = {CONFIRM: "bad", GOOD: "good"}.get(pick.purpose)
        if expected is not None:
            if outcome != expected:
                return Contradiction(pick)
            self.section.record(pick.sha, outcome)
        else:
            self._record(pick.sha, outcome, again=pick.purpose == RECHECK)
        return None

    def determined(self) -> bool:
        """The culprit cannot change: the checks and rechecks are in, and every commit between
        the bounds has a result."""
        if self.checks or self.rechecks:
            return False
        if any(p.purpose != SEARCH for p in self.running.values()):
            return False
        good, bad = self.section.bounds()
        return all(c in self.section.results for c in self.section.commits[good + 1 : bad])

    def moot(self) -> list[int]:
        """Running search probes of commits outside the bounds: no result of theirs can move
        the culprit."""
        good, bad = self.section.bounds()
        index = self.section.commits.index
        return [key for key, p in self.running.items()
                if p.purpose == SEARCH and not good < index(p.sha) < bad]  # fmt: skip

    def _pick(self, sha: str, purpose: str) -> Pick:
        return Pick(sha, purpose, self.round + 1)

    def _record(self, sha: str, outcome: str, *, again: bool) -> None:
        """A search result; one that contradicts the others is probed again before it counts,
        and is a skip if it still does."""
        commits, results = self.section.commits, self.section.results
        at = commits.index(sha)
        contradicts = (
            outcome == "bad" and any(results.get(c) == "good" for c in commits[at + 1 :])
        ) or (outcome == "good" and any(results.get(c) == "bad" for c in commits[:at]))
        if contradicts and not again:
            self.rechecked.add(sha)
            self.rechecks.append(sha)
            return
        self.section.record(sha, "skip" if contradicts else outcome)

    def _search(self) -> str | None:
        """The middle of the widest stretch of untested commits between the bounds and the
        probes in flight."""
        good, bad = self.section.bounds()
        commits, results = self.section.commits, self.section.results
        flying = {p.sha for p in self.running.values()} | set(self.rechecks)
        inside = range(good + 1, bad)
        cuts = sorted({good, bad, *(i for i in inside if commits[i] in flying)})
        best: list[int] = []
        for low, high in itertools.pairwise(cuts):
            stretch = [i for i in range(low + 1, high) if commits[i] not in results]
            if len(stretch) > len(best):
                best = stretch
        return commits[best[len(best) // 2]] if best else None
