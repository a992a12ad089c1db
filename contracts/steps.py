"""The contracts of a run's steps (stdlib only): the activity names of preparing, testing,
linting, measuring, planning, patching, verifying and delivering, and what each takes and
returns. New fields get defaults so histories recorded earlier still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from contracts.budget import Usage
from contracts.runs import EnvironmentRef, EnvironmentSpec, Gate, PolicyChoice, RunRef, StepResult

PREPARE = "ratchet.prepare"
ENVIRONMENT = "ratchet.environment"
RUN_TESTS = "ratchet.run_tests"
PLAN = "ratchet.plan"
PATCH = "ratchet.patch"
LINT = "ratchet.lint"
PERFORMANCE = "ratchet.performance"
VERIFY = "ratchet.verify"
DELIVER = "ratchet.deliver"
SNAPSHOT_DIFF = "ratchet.snapshot_diff"


@dataclass(frozen=True)
class PrepareInput:
    run_id: str
    repo: str
    base_ref: str
    test_command: str | None
    when: str
    start_snapshot: str | None = None
    environment: EnvironmentSpec | None = None
    goal: str = ""
    """Kept as an artifact: the run's RunRef names it (goal_ref)."""


@dataclass(frozen=True)
class EnvironmentInput:
    run: RunRef
    snapshot: str


@dataclass(frozen=True)
class EnvironmentOutput(StepResult):
    environment: EnvironmentRef
    cache_hit: bool
    duration_s: float
    log_ref: str | None = None
    """The build log (an artifact); None on a cache hit."""
    egress: list[str] = field(default_factory=list)
    """What the build's egress proxy allowed and refused."""
    attempt: int = 1


@dataclass(frozen=True)
class Prepared:
    run: RunRef
    test_command: str
    test_command_source: str
    attempt: int = 1
    benchmark: bool = False
    """The repository declares a benchmark: the performance gate runs."""


@dataclass(frozen=True)
class TestInput:
    run: RunRef
    snapshot: str
    test_command: str
    timeout_s: float
    label: str
    grade_with_base_tests: bool = False
    """Run existing tests as they are at the base, whatever the patch did to them."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class TestReport(StepResult):
    passed: bool
    exit_code: int
    timed_out: bool
    duration_s: float
    log_ref: str
    summary: str
    isolation: str
    attempt: int = 1
    results_ref: str | None = None
    """JSON artifact: per-test outcomes, counts, flaky tests, isolation (`ratchet test --json`)."""
    passed_count: int = 0
    failed_count: int = 0
    flaky: list[str] = field(default_factory=list)
    killed_by: list[str] = field(default_factory=list)
    restored_tests: list[str] = field(default_factory=list)
    spans_ref: str | None = None
    """JSON list of the spans the tests exported, when the repository requires spans."""
    cannot_run: str = ""
    """Why the suite could not run at all (no tests ran, collection errors, a missing module,
    command not found); "" when it ran."""
    cannot_run_fatal: bool = False
    """No change to the code can make it run (a missing module or command, a usage error)."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class LintInput:
    run: RunRef
    snapshot: str
    timeout_s: float = 300.0


@dataclass(frozen=True)
class LintReport(StepResult):
    configured: bool
    """False when the repository has no lint command (the gate then passes and says so)."""
    ok: bool = False
    findings_ref: str | None = None
    count: int = 0
    command: str = ""
    detail: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class PerfInput:
    run: RunRef
    snapshot: str
    timeout_s: float = 600.0


@dataclass(frozen=True)
class PerfReport(StepResult):
    passed: bool
    detail: str
    base: list[float] = field(default_factory=list)
    patched: list[float] = field(default_factory=list)
    ratio: float | None = None
    p_value: float | None = None
    unit: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class PlanInput:
    run: RunRef
    goal: str
    policy: PolicyChoice
    memory_ref: str | None = None


@dataclass(frozen=True)
class PlanOutput(StepResult):
    plan_ref: str
    policy_label: str
    attempt: int = 1
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class PatchInput:
    run: RunRef
    snapshot: str
    step: str
    """"patch" or "refactor"."""
    round: int
    goal: str
    plan_ref: str
    feedback_ref: str | None
    policy: PolicyChoice


@dataclass(frozen=True)
class PatchOutput(StepResult):
    snapshot: str
    applied: bool
    changed: bool
    message: str
    patch_ref: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class VerifyInput:
    run: RunRef
    snapshot: str
    tests: TestReport
    baseline: TestReport
    lint: LintReport | None = None
    baseline_lint: LintReport | None = None
    performance: PerfReport | None = None


@dataclass(frozen=True)
class VerifyOutput(StepResult):
    passed: bool
    gates: list[Gate]
    feedback_ref: str | None = None
    attempt: int = 1

    def with_gate(self, gate: Gate) -> VerifyOutput:
        """This verdict with one more gate: it passes only if that gate passes too."""
        return replace(self, passed=self.passed and gate.passed, gates=[*self.gates, gate])


@dataclass(frozen=True)
class DeliverInput:
    run: RunRef
    snapshot: str
    goal: str
    gates: list[Gate] = field(default_factory=list)
    """For the pull request's body, with what follows."""
    plan_ref: str | None = None
    usage: Usage = field(default_factory=Usage)
    trace_id: str = ""
    policy_label: str = ""


@dataclass(frozen=True)
class Delivery(StepResult):
    branch: str
    commit: str
    patch_ref: str
    files_changed: int
    attempt: int = 1
    pull_request_url: str | None = None
    """The draft pull request opened for the branch (a remote and a GitHub token given)."""


@dataclass(frozen=True)
class DiffInput:
    run: RunRef
    snapshot: str


@dataclass(frozen=True)
class DiffOutput:
    patch_ref: str
    files_changed: int
    attempt: int = 1
