"""The probe planner of an investigation (pure and deterministic: workflow-safe).

Probes start one at a time as cores free up, not in rounds: each new search probe goes to the
middle of the widest stretch of untested commits between the bounds and the probes in flight,
so c probes at once cut the range like a c-way multisection, and no core waits for the slowest
probe of a round. Each probe runs the test once, as `git bisect run` does.

A verdict needs two things `git bisect` takes on trust: the culprit's failure seen twice (a
flaky failure must not be bisected) and its parent seen passing. So the culprit so far is probed
again on a core that would otherwise wait; the bad end is confirmed (the CONFIRM checks) only
while it is the culprit so far, and the good ref is checked (GOOD) only while it is the
culprit's parent. A check that does not hold stops the search; one that can no longer matter,
like a search probe of a commit outside the bounds, is cancelled. The culprit is determined as
soon as those hold and every commit between the bounds has a result. A result that contradicts
another (a good commit after a bad one) is probed again before it counts; two runs of a commit
that disagree, or that both contradict, make it a skip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from contracts.bisect import Multisection

SEARCH, AGAIN, RECHECK = "search", "again", "recheck"
CONFIRM, GOOD = "confirm", "good"


@dataclass(frozen=True)
class Pick:
    sha: str
    purpose: str
    """SEARCH; AGAIN (the culprit so far, once more); RECHECK (a result that contradicted
    another, once more); CONFIRM (the bad end once more) or GOOD (the good ref)."""
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
    """The checks not started yet (CONFIRM, GOOD): started when they matter."""
    running: dict[int, Pick] = field(default_factory=dict)
    rechecks: list[str] = field(default_factory=list)
    """Commits whose result contradicted another's: probed again before they count."""
    first: dict[str, str] = field(default_factory=dict)
    """The first outcome of each commit probed a second time."""
    confirmed: set[str] = field(default_factory=set)
    """Commits whose failure was seen twice."""
    round: int = 0
    """The highest round of a result so far."""

    def picks(self, free: int) -> list[Pick]:
        """What to probe on the `free` cores free now (fewer when nothing else is useful): each
        must be `started` before the next call."""
        chosen: list[Pick] = []
        while self.rechecks and len(chosen) < free:
            chosen.append(self._pick(self.rechecks.pop(0), RECHECK))
        chosen += [self._pick(sha, SEARCH) for sha in self._search(free - len(chosen), chosen)]
        while len(chosen) < free and (extra := self._culprit_again() or self._check()):
            chosen.append(extra)
        return chosen

    def started(self, key: int, pick: Pick) -> None:
        self.running[key] = pick

    def finished(self, key: int, outcome: str) -> Contradiction | None:
        pick = self.running.pop(key)
        self.round = max(self.round, pick.round)
        expected = {CONFIRM: "bad", GOOD: "good"}.get(pick.purpose)
        if expected is None:
            self._record(pick.sha, outcome, again=pick.purpose != SEARCH)
        elif outcome != expected:
            return Contradiction(pick)
        elif pick.purpose == GOOD:
            self.section.record(pick.sha, outcome)
        return None

    def determined(self) -> bool:
        """The culprit cannot change: its failure was seen twice, its parent passed, and every
        commit between the bounds has a result."""
        if self.rechecks or any(p.purpose == RECHECK for p in self.running.values()):
            return False
        good, bad = self.section.bounds()
        commits = self.section.commits
        return (self._trusted(commits[bad]) and self._parent_ok(good)
                and all(c in self.section.results for c in commits[good + 1 : bad]))  # fmt: skip

    def moot(self) -> list[int]:
        """Running probes that can no longer move the verdict: search probes outside the
        bounds, a second run of what is no longer the culprit, checks no longer needed."""
        good, bad = self.section.bounds()
        commits = self.section.commits
        culprit_known = bad < len(commits) - 1 and self._trusted(commits[bad])

        def useless(p: Pick) -> bool:
            return {
                SEARCH: not good < commits.index(p.sha) < bad,
                AGAIN: p.sha != commits[bad],
                CONFIRM: culprit_known,
                GOOD: good > 0,
            }.get(p.purpose, False)  # RECHECK: a contradiction is always settled

        return [key for key, p in self.running.items() if useless(p)]

    def drop_moot(self) -> list[int]:
        """`moot()`, no longer running: the caller cancels them."""
        moot = self.moot()
        for key in moot:
            del self.running[key]
        return moot

    def _trusted(self, sha: str) -> bool:
        """A failure seen twice; at the bad end, once every confirmation is in."""
        if sha != self.section.commits[-1]:
            return sha in self.confirmed
        return CONFIRM not in self.checks and not self._running(CONFIRM)

    def _parent_ok(self, good: int) -> bool:
        """The culprit's parent passed: a probe of it, or the good ref's check."""
        return good > 0 or (GOOD not in self.checks and not self._running(GOOD))

    def _running(self, purpose: str) -> bool:
        return any(p.purpose == purpose for p in self.running.values())

    def _culprit_again(self) -> Pick | None:
        """The culprit so far once more, when its failure was seen only once."""
        _, bad = self.section.bounds()
        sha = self.section.commits[bad]
        if bad == len(self.section.commits) - 1 or sha in self.confirmed or sha in self.first:
            return None
        self.first[sha] = "bad"
        return self._pick(sha, AGAIN)

    def _check(self) -> Pick | None:
        """A check that matters now: the good ref while it is the culprit's parent, the bad
        end while it is the culprit."""
        good, bad = self.section.bounds()
        commits = self.section.commits
        for kind, sha, matters in ((GOOD, commits[0], good == 0),
                                   (CONFIRM, commits[-1], bad == len(commits) - 1)):  # fmt: skip
            if kind in self.checks and matters:
                self.checks.remove(kind)
                return self._pick(sha, kind)
        return None

    def _pick(self, sha: str, purpose: str) -> Pick:
        return Pick(sha, purpose, self.round + 1)

    def _record(self, sha: str, outcome: str, *, again: bool) -> None:
        """A search result; one that contradicts the others is probed again before it counts,
        and is a skip if it still does or if its two runs disagree."""
        commits, results = self.section.commits, self.section.results
        at = commits.index(sha)
        contradicts = (
            outcome == "bad" and any(results.get(c) == "good" for c in commits[at + 1 :])
        ) or (outcome == "good" and any(results.get(c) == "bad" for c in commits[:at]))
        if contradicts and not again:
            self.first[sha] = outcome
            self.rechecks.append(sha)
            return
        disagree = again and self.first.get(sha, outcome) != outcome
        trusted = "skip" if contradicts or disagree else outcome
        if again and trusted == "bad":
            self.confirmed.add(sha)
        self.section.record(sha, trusted)

    def _search(self, free: int, chosen: list[Pick]) -> list[str]:
        """Up to `free` commits that cut the untested ones between the bounds, and the probes
        in flight, into nearly equal parts: each new probe goes to the stretch whose parts are
        longest so far, and a stretch's probes are spread evenly inside it."""
        good, bad = self.section.bounds()
        commits, results = self.section.commits, self.section.results
        flying = {p.sha for p in [*self.running.values(), *chosen]} | set(self.rechecks)
        inside = range(good + 1, bad)
        cuts = sorted({good, bad, *(i for i in inside if commits[i] in flying)})
        stretches = [[i for i in range(low + 1, high) if commits[i] not in results]
                     for low, high in itertools.pairwise(cuts)]  # fmt: skip
        shares = [0] * len(stretches)
        for _ in range(free):
            widest = max(range(len(stretches)), default=None,
                         key=lambda s: len(stretches[s]) / (shares[s] + 1))  # fmt: skip
            if widest is None or shares[widest] >= len(stretches[widest]):
                break
            shares[widest] += 1
        return [commits[stretch[(len(stretch) * (j + 1)) // (share + 1)]]
                for stretch, share in zip(stretches, shares, strict=True)
                for j in range(share)]  # fmt: skip
