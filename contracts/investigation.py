"""Contracts of InvestigationWorkflow (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.runs import (
    SUITE_HOW_TO_FIX,
    EnvironmentSpec,
    Gate,
    PolicyChoice,
    Queues,
    RunRef,
    StepResult,
)
from contracts.sentry import Frame, SentryEvent

INVESTIGATION_WORKFLOW = "InvestigationWorkflow"
INV_PREPARE = "ratchet.investigation.prepare"
PROBE = "ratchet.investigation.probe"
HISTORY = "ratchet.investigation.history"
LOCALIZE = "ratchet.investigation.localize"
REVERT = "ratchet.investigation.revert"
REPORT = "ratchet.investigation.report"
CHECK_REPRODUCTION = "ratchet.investigation.check_reproduction"
CAPACITY = "ratchet.investigation.capacity"

KINDS = ("regression", "performance", "invariants")


@dataclass(frozen=True)
class InvestigationInput:
    run_id: str
    kind: str
    repo: str
    bad_ref: str = "HEAD"
    good_ref: str | None = None
    test_command: str | None = None
    """The reproduction: a command whose failure is the problem (or the benchmark to compare)."""
    test_id: str | None = None
    event: SentryEvent | None = None
    policy: PolicyChoice | None = None
    trace_id: str = ""
    parallel_probes: int = 3
    test_timeout_s: float = 600.0
    heartbeat_timeout_s: float = 30.0
    max_history: int = 4096
    benchmark_runs: int = 5
    max_slowdown: float = 0.10
    reproduction_files: dict[str, str] = field(default_factory=dict)
    """Files written into every probe's workspace (e.g. the test of a drifted spec claim)."""
    queues: Queues = field(default_factory=Queues)
    environment: EnvironmentSpec | None = None
    suite_command: str | None = None
    """The whole suite, for the fix's gates (POST /investigations "test_command"); default: the
    repository's own (ratchet.toml, detection)."""
    write_reproduction: bool = False
    """Have the policy write a reproduction even when an existing test reproduces the event."""
    reproducer_attempts: int = 3


@dataclass(frozen=True)
class InvPrepareInput:
    run_id: str
    repo: str
    bad_ref: str
    release: str
    frames: list[Frame]
    test_command: str | None
    test_id: str | None
    kind: str
    when: str
    good_ref: str | None = None
    environment: EnvironmentSpec | None = None
    suite_command: str | None = None
    event: SentryEvent | None = None


@dataclass(frozen=True)
class InvPrepared:
    run: RunRef
    """base_sha is the bad commit: the fix is made on top of it."""
    reproduce: str
    """The command that shows the problem (full test command for the gates is `test_command`)."""
    test_command: str
    frame_files: list[str]
    refused_frames: list[str]
    attempt: int = 1
    good_sha: str | None = None
    evidence_ref: str | None = None
    """The event as the reproducer reads it (exception, frames with their source, variables)."""
    target: Target | None = None
    """How the event failed, for a written reproduction to match."""
    event_ref: str | None = None
    """The event as it came (JSON of SentryEvent), kept once: the report reads it from here."""


@dataclass(frozen=True)
class Target:
    exception_type: str
    file: str = ""
    """The repository path of the event's innermost in-app frame ("" when none resolves)."""
    function: str = ""

    def describe(self) -> str:
        where = f" raised in {self.function}() of {self.file}" if self.file else ""
        return f"{self.exception_type or 'an exception'}{where}"


@dataclass(frozen=True)
class ReproductionInput:
    run: RunRef
    snapshot: str
    """The reproducer's work: the bad commit plus the new test."""
    target: Target
    timeout_s: float
    attempt: int = 1


@dataclass(frozen=True)
class ReproductionCheck(StepResult):
    matched: bool
    detail: str
    """What the new test did at the bad commit, and how it differs from the event when it does."""
    feedback_ref: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """The new test files (path → content): written into every probe's workspace."""
    command: str = ""
    """The reproduction: the new tests, run with pytest."""
    failure: str = ""
    """The new test's traceback at the bad commit (its tail), for the report."""
    attempt: int = 1
    latent_goal: str = ""
    """The goal of a fix when the new test fails at every commit (a latent bug)."""


@dataclass(frozen=True)
class HistoryInput:
    run: RunRef
    good: str | None
    max_commits: int


@dataclass(frozen=True)
class CapacityInput:
    run_id: str
    sandbox_queue: str


@dataclass(frozen=True)
class Capacity:
    """The cores the sandbox queue's workers have free, as the worker that answered sees them:
    its own usable cores less the repository commands it is running, and the cores of the other
    workers polling the queue (counted as idle, each the size of this one)."""

    cores: int
    busy: int
    workers: int
    attempt: int = 1

    @property
    def free(self) -> int:
        return max(1, self.cores * self.workers - self.busy)

    @property
    def step_detail(self) -> str:
        workers = f"{self.workers} worker(s) of {self.cores}"
        return f"{self.free} cores free ({workers}, {self.busy} busy)"


@dataclass(frozen=True)
class History:
    commits: list[str]
    """Oldest first, ending with the bad commit (first-parent line)."""
    attempt: int = 1


@dataclass(frozen=True)
class ProbeInput:
    run: RunRef
    sha: str
    command: str
    kind: str
    slot: int
    """Which of the run's probes in flight this is (its workspace comes from the worker's pool)."""
    timeout_s: float
    runs: int = 1
    reference: str | None = None
    """Performance mode: the good commit, measured side by side with `sha` in the same probe
    (so machine load hits both alike)."""
    files: dict[str, str] = field(default_factory=dict)
    max_slowdown: float = 0.10
    reruns: int = 1
    """Re-runs of failing tests inside the probe (a failure that then passes: a skip). The
    planned search runs each test once and probes a commit again where it matters instead:
    the culprit, and results that contradict others."""


@dataclass(frozen=True)
class ProbeResult:
    sha: str
    outcome: str
    """"good", "bad" or "skip" (does not build, flaky, timed out)."""
    detail: str
    duration_s: float
    samples: list[float] = field(default_factory=list)
    attempt: int = 1

    def not_reproduced(self, policy_could_write: bool) -> str:
        """Why an investigation stops when this probe of the bad commit did not show it."""
        hint = (
            f"; if the suite cannot run here, {SUITE_HOW_TO_FIX}" if self.outcome == "skip" else ""
        )
        if policy_could_write:
            hint += ("; no existing test reproduces the event, and a policy (or "
                     "reproduce.test_command) would let Ratchet write one")  # fmt: skip
        what = f"{self.outcome}: {self.detail}"
        return f"the problem does not reproduce at {self.sha[:12]} ({what}){hint}"


@dataclass(frozen=True)
class LocalizeInput:
    run: RunRef
    culprit: str
    frame_files: list[str]
    reproduce: str = ""
    written: ReproductionCheck | None = None
    """The reproduction the policy wrote, which a fix must make pass and keep."""


@dataclass(frozen=True)
class Localized:
    author: str
    message: str
    files: list[str]
    """Files of the culprit's change that the failure touches (all its files when none do)."""
    hunks_ref: str
    attempt: int = 1
    fix_goal: str = ""
    """The goal of a policy's fix of the culprit's regression."""


@dataclass(frozen=True)
class RevertInput:
    run: RunRef
    culprit: str
    files: list[str]


@dataclass(frozen=True)
class ProbeRecord:
    round: int
    sha: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class ReportInput:
    run_id: str
    kind: str
    event: SentryEvent | None
    reproduce: str
    frame_files: list[str]
    refused_frames: list[str]
    culprit: str | None
    author: str
    message: str
    confidence: str
    suspects: list[str]
    probes: list[ProbeRecord]
    fix: str
    gates: list[Gate]
    hunks_ref: str | None
    patch_ref: str | None
    branch: str | None
    written: ReproductionCheck | None = None
    """The reproduction the policy wrote (None: an existing test or command reproduced it)."""
    latent: bool = False
    """The reproduction fails at every commit: a latent bug, fixed without bisection."""
    event_ref: str | None = None
    """The event's artifact (InvPrepared.event_ref) when `event` is None."""


@dataclass(frozen=True)
class ReportOutput:
    report_ref: str
    attempt: int = 1
