"""Contracts of the multi-agent patterns (stdlib only): structured roles and the red team."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.budget import Usage
from contracts.runs import Gate, PolicyChoice, RunRef, StepResult

ROLE_CALL = "ratchet.role"
ADVERSARIAL_RUN = "ratchet.adversarial_tests"
ADD_TESTS = "ratchet.add_tests"
MEMORY_READ = "ratchet.memory.read"
MEMORY_RECORD = "ratchet.memory.record"
DEFAULT_LENSES = ["correctness", "simplicity", "performance", "security", "testability"]
PATTERN_OF = {
    "perspective": "perspectives", "synthesis": "perspectives", "adversary": "red team",
    "judge": "red team", "invariants": "invariants", "memory": "memory", "claims": "drift",
}  # fmt: skip
"""The pattern each role serves: each pattern spends at most its share of the budget."""


@dataclass(frozen=True)
class RoleInput:
    run: RunRef
    role: str
    """"perspective", "synthesis", "adversary" or "judge"."""
    key: str
    """Which answers a script gives: "perspective.security", "synthesis", ..."""
    policy: PolicyChoice
    offset: int
    """How many scripted answers under `key` earlier calls used."""
    goal: str
    lens: str = ""
    snapshot: str | None = None
    inputs: list[str] = field(default_factory=list)
    """Artifact refs the role reads: the drafts (synthesis), the failing tests (judge)."""
    note: str = ""
    """Short text for the role (the memory role: what the run did)."""
    memory_ref: str | None = None
    """The repository's relevant memory entries, for planners."""


@dataclass(frozen=True)
class RoleOutput(StepResult):
    answer_ref: str
    """The answer, as JSON that matched the role's schema."""
    text_ref: str
    """What a person (or the coder) reads: the merged plan, the judge's feedback."""
    summary: str
    consumed: int
    """Model calls (scripted answers) used: 2 when the first answer had to be retried."""
    usage: Usage = field(default_factory=Usage)
    attempt: int = 1
    valid: int = 0
    invalid: int = 0
    """The judge's verdicts, counted."""


@dataclass(frozen=True)
class AdversarialInput:
    run: RunRef
    snapshot: str
    tests: list[str]
    """Refs of adversary answers whose tests to run."""
    timeout_s: float
    only_valid_from: str | None = None
    """A judge's answer: run only the tests it judged valid."""
    only_passing_from: str | None = None
    """Earlier results: run only the tests that passed there (invariants that held at base)."""
    label: str = "Adversarial tests (written from the goal, not shown to you)"


@dataclass(frozen=True)
class AdversarialOutput(StepResult):
    results_ref: str
    """JSON list: {path, content, rationale, passed, failure}."""
    tried: int
    failing: int
    attempt: int = 1
    feedback_ref: str | None = None
    """For the coder: which tests failed and how — never their source."""

    def guard_note(self) -> str:
        """What invariants run at base say: how many hold and guard the change."""
        held = self.tried - self.failing
        note = f"{held} of {self.tried} proposed invariants hold at base and guard the change"
        return note + (
            f"; {self.failing} fail at base (reported, not used)" if self.failing else ""
        )


@dataclass(frozen=True)
class RedTeam:
    """The red team's first round, counted: what its adversarial gate says."""

    tried: int = 0
    broke: int = 0
    invalid: int = 0

    def gate(self, still_failing: int) -> Gate:
        detail = f"tried {self.tried}, broke the patch {self.broke}, judged invalid {self.invalid}"
        if still_failing:
            return Gate("adversarial", False, f"{detail}; {still_failing} valid tests fail")
        return Gate("adversarial", True, f"{detail}; every valid test passes")


@dataclass(frozen=True)
class AddTestsInput:
    run: RunRef
    snapshot: str
    results_ref: str
    """Results of the last run of the red team's tests (only valid ones, after a judge)."""


@dataclass(frozen=True)
class AddTestsOutput:
    snapshot: str
    added: list[str]
    attempt: int = 1


@dataclass(frozen=True)
class MemoryReadInput:
    repo: str
    goal: str
    run_id: str = ""
    goal_ref: str | None = None
    """The goal's artifact when `goal` is empty (see RunRef.goal_ref)."""


@dataclass(frozen=True)
class MemoryRead(StepResult):
    context_ref: str | None
    ids: list[str]
    attempt: int = 1


@dataclass(frozen=True)
class MemoryRecordInput:
    run_id: str
    repo: str
    answer_ref: str


@dataclass(frozen=True)
class MemoryRecorded(StepResult):
    version: int
    added: int
    stale: int
    attempt: int = 1
