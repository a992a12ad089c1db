"""k-way multisection over a linear range of commits (pure and deterministic: workflow-safe).

commits[0] is known good and commits[-1] known bad. Each round probes up to k commits spread
evenly inside the open range; the first bad probe and the last good one before it become the new
bounds, so a range of N commits takes about log_(k+1) N rounds instead of log_2 N. Commits whose
probe is "skip" (does not build, flaky) are never bounds; when only skipped commits remain between
the bounds, the culprit is one of them and the verdict's confidence says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Multisection:
    commits: list[str]
    k: int = 3
    results: dict[str, str] = field(default_factory=dict)
    """sha → "good" | "bad" | "skip"."""

    def bounds(self) -> tuple[int, int]:
        """(last good index, first bad index) given every result so far."""
        bad = next(
            (i for i, c in enumerate(self.commits) if self.results.get(c) == "bad"),
            len(self.commits) - 1,
        )
        good = max(
            (i for i, c in enumerate(self.commits[:bad]) if self.results.get(c) == "good"),
            default=0,
        )
        return good, bad

    def next_probes(self) -> list[str]:
        good, bad = self.bounds()
        inside = [i for i in range(good + 1, bad) if self.commits[i] not in self.results]
        if not inside:
            return []
        if len(inside) <= self.k:
            return [self.commits[i] for i in inside]
        # k points that cut the untested commits into k + 1 nearly equal parts.
        picks = sorted({inside[(len(inside) * (j + 1)) // (self.k + 1)] for j in range(self.k)})
        return [self.commits[i] for i in picks]

    def record(self, sha: str, outcome: str) -> None:
        self.results[sha] = outcome

    def done(self) -> bool:
        return not self.next_probes()

    def verdict(self) -> tuple[str, str, list[str]]:
        """(culprit sha, confidence, other suspects): the first bad commit after the last good."""
        good, bad = self.bounds()
        skipped = [c for c in self.commits[good + 1 : bad] if self.results.get(c) == "skip"]
        culprit = self.commits[bad]
        if not skipped:
            return culprit, "high", []
        # The break is somewhere in the skipped commits or at `culprit`: name the earliest.
        return (
            skipped[0],
            f"low: {len(skipped) + 1} candidate commits could not be told apart",
            [
                *skipped[1:],
                culprit,
            ],
        )


@dataclass
class Doubling:
    """Without a known good commit: probe ancestors of the bad one at doubling distances, k a
    round (1, 2, 4, ... commits back), then the oldest commit of the history."""

    commits: list[str]
    k: int
    distance: int = 1

    def next_probes(self, results: dict[str, str]) -> list[str]:
        picks: list[str] = []
        while len(picks) < max(1, self.k) and self.distance < len(self.commits):
            picks.append(self.commits[-1 - self.distance])
            self.distance *= 2
        if not picks and self.commits[0] not in results:
            picks = [self.commits[0]]
        return picks
