"""Contracts of the model-driven agent loop (stdlib only): turns, tool calls, usage, budgets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from contracts.budget import Budget, Usage
from contracts.runs import PolicyChoice, Queues, RunRef

AGENT_WORKFLOW = "AgentLoopWorkflow"
MODEL_TURN = "ratchet.model_turn"
RUN_TOOL = "ratchet.tool"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input_json: str

    def arguments(self) -> dict[str, object]:
        """The call's input as a mapping ({} when the model sent something else)."""
        try:
            value = json.loads(self.input_json)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def brief(self) -> str:
        """What the call acts on, for the activity's summary in the Temporal UI."""
        args = self.arguments()
        target = next(
            (args[k] for k in ("path", "pattern", "command") if isinstance(args.get(k), str)), ""
        )
        return f"{self.name} {str(target)[:80]}".rstrip()

    def key(self) -> str:
        """Names the call by what it does, so the same failing call repeated is seen as a loop."""
        return hashlib.sha256(f"{self.name}\0{self.input_json}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class TurnInput:
    run: RunRef
    role: str
    """"code" or "refactor": picks the model settings and the opening message."""
    provider: str
    transcript_ref: str | None
    """None on the first turn: the activity opens the conversation."""
    pending_results: list[ToolResult]
    goal: str
    plan_ref: str
    feedback_ref: str | None
    snapshot: str
    policy: PolicyChoice | None = None
    """The run's policy (a scripted one names its script); None in runs recorded before."""
    script_key: str = ""
    """Which conversation of a script this is ("patch.<round>", "refactor.1")."""


@dataclass(frozen=True)
class TurnOutput:
    transcript_ref: str
    tool_calls: list[ToolCall]
    stop_reason: str
    text: str
    model: str
    usage: Usage
    attempt: int = 1


@dataclass(frozen=True)
class ToolInput:
    run: RunRef
    snapshot: str
    call: ToolCall
    test_command: str
    test_timeout_s: float


@dataclass(frozen=True)
class ToolOutput:
    result: ToolResult
    snapshot: str
    """The workspace after the call (a new snapshot when it edited files)."""
    attempt: int = 1


@dataclass(frozen=True)
class AgentInput:
    run: RunRef
    role: str
    provider: str
    goal: str
    plan_ref: str
    feedback_ref: str | None
    snapshot: str
    test_command: str
    test_timeout_s: float
    budget: Budget
    usage: Usage
    """Usage of the whole run so far (budgets are per run)."""
    started_at: str
    """ISO time the run started (the wall-clock budget counts from it)."""
    transcript_ref: str | None = None
    pending_results: list[ToolResult] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    max_turns_per_execution: int = 40
    """Continue-as-new after this many turns, before the history grows large."""
    retry_initial_s: float = 2.0
    queues: Queues = field(default_factory=Queues)
    retry_max_s: float = 120.0
    heartbeat_timeout_s: float = 30.0
    """A model call whose worker stops heartbeating this long is retried elsewhere."""
    policy: PolicyChoice | None = None
    script_key: str = ""

    def serves(self) -> tuple[str, int | None]:
        """The step of the run this loop serves and its round ("patch.2": patch, round 2)."""
        step, _, number = self.script_key.partition(".")
        return step or self.role, int(number) if number.isdigit() else None


@dataclass(frozen=True)
class AgentOutput:
    stop: str
    """"submitted", "budget", "loop", "ended" (the model stopped without submitting),
    "cancelled" or "failed" (a step failed for good: `reason` and `error_type` say why, and
    `usage` still counts every paid call)."""
    snapshot: str
    usage: Usage
    transcript_ref: str | None
    pending_results: list[ToolResult] = field(default_factory=list)
    summary: str = ""
    reason: str = ""
    error_type: str = ""

    def failure(self, step: str) -> tuple[str, str] | None:
        """(type, message) of a run's failure when the loop stopped for good, else None."""
        if self.stop == "loop":
            return "LoopDetected", self.reason
        if self.stop == "failed":
            return self.error_type or "StepFailed", f"step {step} failed: {self.reason}"
        return None

    @property
    def step_detail(self) -> str:
        """The step list's line for the loop (a child workflow: no activity writes it)."""
        return f"{self.stop}: {(self.reason or self.summary)[:200]}"
