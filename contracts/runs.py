"""Names and dataclasses shared by the API, the workflows and the activities (stdlib only).

Every workflow, activity, signal and query takes one frozen dataclass and returns one; new
fields get defaults so histories recorded earlier still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from contracts.budget import Budget, Usage

FORWARD_WORKFLOW = "ForwardPlanningWorkflow"

# Activity names are explicit and prefixed: renaming a Python function cannot break histories.
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

SUITE_HOW_TO_FIX = (
    "declare the suite's command (`test_command`, or [tests] command in ratchet.toml) and the "
    'environment it needs (`"environment": {"setup": [...]}` in the request, or '
    "[environment] setup in ratchet.toml)"
)
"""What to do when a suite cannot run (quoted by the gates and by the workflows' errors)."""

NON_RETRYABLE_TYPES = [
    "BadRepository",
    "EnvironmentBuildFailed",
    "PatchRefused",
    "DeliveryConflict",
    "PolicyError",
    "ArtifactNotFound",
    "GymError",
    "AnswerCutOff",
]


PolicyName = Literal["anthropic", "scripted", "openai-compatible"]
"""The policies a run can name: Claude, a self-hosted model, the scripted test double."""
POLICY_NAMES: tuple[PolicyName, ...] = ("anthropic", "openai-compatible", "scripted")
RUN_PREFIXES = {"task": "task", "investigation": "inv", "drift": "drift"}
"""Run ids are "<prefix>-<12 hex digits>" (api/starting.py mints them)."""


@dataclass(frozen=True)
class PolicyChoice:
    name: str
    script_ref: str | None = None


@dataclass(frozen=True)
class Queues:
    """Task queues for the two heavy kinds of activity; "" means the workflow's own queue.

    Model calls and sandboxed runs can then scale on separate workers (deploy/README.md)."""

    model: str = ""
    sandbox: str = ""


# Model failures no retry can fix; the rest (429, 529, 5xx, dropped connections) are retried.
MODEL_ERRORS = ["ModelRequestRejected", "ModelSpendLimit", "ModelAnswerUnreadable"]


@dataclass(frozen=True)
class EnvironmentSpec:
    """An environment declared by a request: its setup commands and, optionally, the files whose
    content keys it (default: the manifests and lockfiles the repository has)."""

    setup: list[str] = field(default_factory=list)
    key_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EnvironmentRef:
    """The environment a run's sandboxed commands use (built under $RATCHET_HOME/envs/<key>)."""

    key: str
    source: str
    """Where its definition came from: "request", "ratchet.toml", "detected: <file>" or
    "default: …"."""
    setup: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskInput:
    run_id: str
    repo: str
    goal: str
    policy: PolicyChoice
    base_ref: str = "HEAD"
    test_command: str | None = None
    trace_id: str = ""
    max_repair_rounds: int = 3
    test_timeout_s: float = 600.0
    heartbeat_timeout_s: float = 30.0
    start_snapshot: str | None = None
    """Begin at this snapshot of an earlier run (a fork) instead of at the base."""
    forked_from: str | None = None
    budget: Budget = field(default_factory=Budget)
    model_retry_initial_s: float = 2.0
    """First backoff of a failed model call (429/529/5xx), doubled up to model_retry_max_s."""
    model_retry_max_s: float = 120.0
    """The longest wait between two tries of a model call: an outage of any length is waited
    out (within the step's 6 hours) at this pace, never faster than the first backoff."""
    turns_per_execution: int = 40
    """The agent loop continues-as-new after this many turns, keeping its history short."""
    perspectives: int = 0
    """Planners with distinct lenses drafting in parallel before a synthesizer merges them."""
    lenses: list[str] = field(default_factory=list)
    adversarial: bool = False
    """After a patch passes, a red team writes tests meant to break it."""
    invariants: bool = False
    """Properties that hold at base become guards every patch must keep."""
    memory: bool = False
    """When the run ends, record what it learned in the repository's knowledge base."""
    pattern_share: float = 0.2
    """Each pattern (perspectives, red team, invariants, memory) may spend this share of every
    budget limit; past it the pattern stops and the run goes on without it."""
    approve_plan: bool = False
    """Wait for a person to approve the plan before any patch is made."""
    require_approval: bool = False
    """Wait for a person to approve the verified patch before it is delivered."""
    approval_timeout_s: float = 7 * 24 * 3600.0
    """Unanswered this long, a wait for approval ends the run ("expired"), its work kept."""
    queues: Queues = field(default_factory=Queues)
    environment: EnvironmentSpec | None = None
    """The request's environment; None: ratchet.toml's [environment], else detection."""


@dataclass(frozen=True)
class RunRef:
    """Where a run's world is: enough for any worker to find the mirror and the base."""

    run_id: str
    repo: str
    mirror: str
    base_sha: str
    when: str
    """The run's fixed commit date (ISO 8601), so retried steps make identical commits."""
    requested_environment: EnvironmentSpec | None = None
    environment: EnvironmentRef | None = None
    """Set by the environment step: every sandboxed command of the run uses it (a bisection
    probe uses the environment of its own commit's key files)."""


@dataclass(frozen=True)
class PrepareInput:
    run_id: str
    repo: str
    base_ref: str
    test_command: str | None
    when: str
    start_snapshot: str | None = None
    environment: EnvironmentSpec | None = None


@dataclass(frozen=True)
class EnvironmentInput:
    run: RunRef
    snapshot: str


@dataclass(frozen=True)
class EnvironmentOutput:
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


@dataclass(frozen=True)
class TestReport:
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
class LintReport:
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
class PerfReport:
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
class PlanOutput:
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
class PatchOutput:
    snapshot: str
    applied: bool
    changed: bool
    message: str
    patch_ref: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


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
class VerifyOutput:
    passed: bool
    gates: list[Gate]
    feedback_ref: str | None = None
    attempt: int = 1


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
class Delivery:
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


@dataclass(frozen=True)
class BudgetUpdate:
    """New limits (None keeps the current one); raising a spent budget resumes a paused run."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_turns: int | None = None
    max_wall_s: float | None = None


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""


@dataclass(frozen=True)
class ApprovalDecision:
    """The body of the "approve" and "reject" updates; a rejection needs a reason."""

    by: str = ""
    comment: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Approval:
    """One answered (or expired) wait for approval, as the run keeps it."""

    stage: str
    """"plan" or "delivery"."""
    decision: str
    """"approved", "rejected" or "expired"."""
    by: str
    at: str
    comment: str = ""


@dataclass(frozen=True)
class ControlAnswer:
    """What a budget or cancel update answers: the run's phase, budget and usage after it."""

    phase: str
    budget: Budget
    usage: Usage
    message: str = ""


@dataclass(frozen=True)
class StepRecord:
    name: str
    status: str
    """"running", "completed" or "failed"."""
    attempts: int
    started_at: str
    ended_at: str | None = None
    round: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Culprit:
    sha: str
    author: str
    message: str
    confidence: str


@dataclass(frozen=True)
class RunResult:
    gates: list[Gate]
    patch_ref: str | None
    branch: str | None
    commit: str | None = None
    plan_ref: str | None = None
    refactor_kept: bool | None = None
    isolation: str | None = None
    """Which sandbox and limits were in force for the test run that verified the result."""
    draft: bool = False
    """Delivered unverified, as it stood when the run was cancelled or paused."""
    culprit: Culprit | None = None
    rounds: int | None = None
    probes: int | None = None
    report_ref: str | None = None
    investigation_run_id: str | None = None
    """A drift check that found drift started this investigation."""
    memory_used: list[str] = field(default_factory=list)
    """Knowledge-base entries the planners were given."""
    pull_request_url: str | None = None
    environment: EnvironmentRef | None = None
    usage: Usage = field(default_factory=Usage)
    """What the run paid for (a parent adds a child run's to its own)."""


@dataclass(frozen=True)
class RunState:
    run_id: str
    kind: str
    trace_id: str
    policy_label: str
    steps: list[StepRecord] = field(default_factory=list)
    result: RunResult | None = None
    error: dict[str, str] | None = None
    snapshots: dict[str, str] = field(default_factory=dict)
    """Snapshot id (commit sha) after each step that changed the tree: base, patch-N, refactor-1."""
    task: TaskInput | None = None
    phase: str = "running"
    """"running", "paused" (a budget is spent), "awaiting_approval", "cancelled", "completed",
    "failed", "rejected" or "expired" (no answer to a wait for approval)."""
    awaiting: str = ""
    """While awaiting approval: what of, "plan" or "delivery"."""
    approvals: list[Approval] = field(default_factory=list)
    pause_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    """Everything the run paid for, its child runs' included."""
    budget: Budget = field(default_factory=Budget)
    events: list[str] = field(default_factory=list)
    """Sentry events that joined this investigation (ids, newest last)."""
    child_usage: dict[str, Usage] = field(default_factory=dict)
    """The part of `usage` each child run spent, by its run id (an investigation's fix)."""
    transcripts: dict[str, str] = field(default_factory=dict)
    """The agent's conversation of each step ("patch-1", "refactor-1"): artifact refs."""
