"""Names and dataclasses shared by the API, the workflows and the activities (stdlib only).

Every workflow, activity, signal and query takes one frozen dataclass and returns one; new
fields get defaults so histories recorded earlier still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from contracts.budget import Budget, Usage

FORWARD_WORKFLOW = "ForwardPlanningWorkflow"

# Activity names are explicit and prefixed: renaming a Python function cannot break histories.

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
class StepResult:
    """An activity's result for a step. The one line the run's step list shows for it comes
    with it, written on the activity side (activities/details.py): the workflow copies it and
    holds no presentation text."""

    step_detail: str = field(default="", kw_only=True)


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
    goal_ref: str | None = None
    """The task's goal, kept once as an artifact by the prepare step: the steps after it send
    an empty goal and their activities read it from here (a long goal is not copied into
    every step's input)."""


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


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
class StepRecord:
    name: str
    status: str
    """"running", "completed" or "failed"."""
    attempts: int
    started_at: str
    ended_at: str | None = None
    round: int | None = None
    detail: str = ""

    def where(self) -> str:
        return step_label(self.name, self.round)


@dataclass(frozen=True)
class RunResult:
    """What every kind of run ends with; each kind's result adds its own fields."""

    gates: list[Gate]
    patch_ref: str | None
    branch: str | None
    commit: str | None = None
    pull_request_url: str | None = None
    report_ref: str | None = None
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

    def with_event(self, event_id: str, keep: int) -> RunState:
        """With a Sentry event that joined the run (once however often it is delivered; the
        newest `keep` are kept)."""
        if not event_id or event_id in self.events:
            return self
        return replace(self, events=[*self.events, event_id][-keep:])

    def begun(self, name: str, round_: int | None, at: str) -> RunState:
        """With one more step, running since `at`."""
        return replace(self, steps=[*self.steps, StepRecord(name, "running", 1, at, round=round_)])

    def ended(self, index: int, status: str, attempts: int, at: str, detail: str) -> RunState:
        """With step `index` ended at `at`, and the line it ended with."""
        steps = list(self.steps)
        steps[index] = replace(steps[index], status=status, attempts=attempts, ended_at=at,
                               detail=detail)  # fmt: skip
        return replace(self, steps=steps)

    def charged(self, usage: Usage, child_id: str | None = None) -> RunState:
        """With `usage` added; a child run's is also kept apart under its id."""
        children = dict(self.child_usage)
        if child_id is not None:
            children[child_id] = children.get(child_id, Usage()) + usage
        return replace(self, usage=self.usage + usage, child_usage=children)

    def details(self) -> str:
        """What the Temporal UI shows of the run: where it is and what it has spent."""
        lines = [f"**{self.phase}**" + (f": {self.pause_reason}" if self.pause_reason else "")]
        if self.steps:
            last = self.steps[-1]
            lines.append(f"step: {last.where()}, {last.status}"
                         + (f", attempt {last.attempts}" if last.attempts > 1 else ""))  # fmt: skip
        usage, budget = self.usage, self.budget
        if usage.turns or budget != Budget():
            spent = f"{usage.turns} turns, {usage.tokens} tokens, ${usage.cost_usd:.4f}"
            limits = ", ".join(
                f"{name.removeprefix('max_')} ≤ {value}"
                for name, value in vars(budget).items() if value is not None
            )  # fmt: skip
            lines.append(f"used: {spent}" + (f" (budget: {limits})" if limits else ""))
        return "\n\n".join(lines)

    def step_lines(self, limit: int) -> str:
        """The steps as text, newest last, at most `limit` characters (the newest kept)."""
        lines = (f"{step_label(s.name, s.round)}: {s.status} {s.detail}" for s in self.steps)
        return "\n".join(lines)[-limit:]


def step_label(name: str, round_: int | None) -> str:
    """A step as a person reads it: "patch (round 2)"."""
    return name + (f" (round {round_})" if round_ else "")
