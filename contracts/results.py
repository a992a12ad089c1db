"""Each kind of run's own result, and the state its `state` query answers with it (stdlib
only): a task's plan and refactor, an investigation's culprit and search, a drift check's
investigation. What every result says is RunResult (contracts/runs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.runs import RunResult, RunState


@dataclass(frozen=True)
class Culprit:
    sha: str
    author: str
    message: str
    confidence: str


@dataclass(frozen=True)
class TaskResult(RunResult):
    """A forward run's result (ForwardPlanningWorkflow)."""

    plan_ref: str | None = None
    refactor_kept: bool | None = None
    isolation: str | None = None
    """Which sandbox and limits were in force for the test run that verified the result."""
    draft: bool = False
    """Delivered unverified, as it stood when the run was cancelled or paused."""
    memory_used: list[str] = field(default_factory=list)
    """Knowledge-base entries the planners were given."""


@dataclass(frozen=True)
class InvestigationResult(RunResult):
    """An investigation's result: the culprit and how the search went (InvestigationWorkflow)."""

    culprit: Culprit | None = None
    rounds: int | None = None
    probes: int | None = None


@dataclass(frozen=True)
class DriftResult(RunResult):
    """A drift check's result (DriftWorkflow)."""

    investigation_run_id: str | None = None
    """A drift check that found drift started this investigation."""


@dataclass(frozen=True)
class TaskState(RunState):
    result: TaskResult | None = None


@dataclass(frozen=True)
class InvestigationState(RunState):
    result: InvestigationResult | None = None


@dataclass(frozen=True)
class DriftState(RunState):
    result: DriftResult | None = None
