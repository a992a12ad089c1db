"""What the API answers: runs, their steps, results and usage, started runs and schedules."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.models.inputs import BudgetIn
from contracts.budget import Usage


class ApprovalPublic(BaseModel):
    stage: str
    decision: str
    by: str
    at: str
    comment: str = ""


class UsagePublic(BaseModel):
    """Every model call the run paid for (a scripted run's turns count, at no cost)."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_read_share: float = 0.0
    """The share of input tokens read from the prompt cache."""
    cost_usd: float = 0.0
    unpriced_turns: int = 0
    price_unknown: bool = False
    """Some turns used a model with no known price: cost_usd is then a lower bound."""
    children: dict[str, UsagePublic] = Field(default_factory=dict)
    """Child runs' part of this usage (an investigation's fix run), by run id."""

    @classmethod
    def of(cls, usage: Usage, children: dict[str, Usage] | None = None) -> UsagePublic:
        return cls(
            **asdict(usage), cache_read_share=round(usage.cache_read_share, 4),
            price_unknown=usage.unpriced_turns > 0,
            children={k: cls.of(v) for k, v in (children or {}).items()},
        )  # fmt: skip


class ControlPublic(BaseModel):
    run_id: str
    phase: str
    budget: BudgetIn
    usage: UsagePublic
    message: str = ""


class EnvironmentPublic(BaseModel):
    key: str
    source: str
    setup: list[str]


class CulpritPublic(BaseModel):
    sha: str
    author: str
    message: str
    confidence: str


class TaskAccepted(BaseModel):
    run_id: str
    workflow_id: str
    status_url: str
    temporal_ui_url: str
    trace_id: str
    policy: str
    forked_from: str | None = None


class GatePublic(BaseModel):
    name: str
    passed: bool
    detail: str


class StepPublic(BaseModel):
    name: str
    status: str
    attempts: int
    started_at: str
    ended_at: str | None
    round: int | None = None
    detail: str = ""


class RunResultPublic(BaseModel):
    gates: list[GatePublic]
    patch_url: str | None
    branch: str | None
    pull_request_url: str | None = None
    """The draft pull request (a remote and GITHUB_TOKEN configured)."""
    commit: str | None = None
    refactor_kept: bool | None = None
    isolation: str | None = None
    draft: bool = False
    culprit: CulpritPublic | None = None
    rounds: int | None = None
    probes: int | None = None
    report_url: str | None = None
    plan_url: str | None = None
    investigation_run_id: str | None = None
    memory_used: list[str] = Field(default_factory=list)
    environment: EnvironmentPublic | None = None


class ScheduleCreated(BaseModel):
    schedule_id: str
    every_s: int
    temporal_ui_url: str


class SchedulePublic(BaseModel):
    schedule_id: str
    paused: bool
    recent_runs: list[str]
    next_runs: list[str]


class ErrorPublic(BaseModel):
    type: str
    message: str


RunStatus = Literal[
    "running", "paused", "awaiting_approval", "completed", "failed", "cancelled", "rejected",
    "expired",
]  # fmt: skip


class RunSummary(BaseModel):
    """One run in GET /runs, from Temporal visibility (no worker needed to answer)."""

    run_id: str
    kind: str
    status: RunStatus
    repo: str | None
    policy: str | None
    sentry_issue: str | None = None
    summary: str
    started_at: datetime
    ended_at: datetime | None
    temporal_ui_url: str


class RunList(BaseModel):
    runs: list[RunSummary]
    next_page_token: str | None
    """Pass as `page_token` for the next page; null on the last one."""
    query: str
    """The Temporal visibility query this page answers (paste it into the Temporal UI)."""


class RunPublic(BaseModel):
    run_id: str
    workflow_id: str
    kind: str
    status: RunStatus
    steps: list[StepPublic]
    result: RunResultPublic | None
    trace_id: str
    temporal_ui_url: str
    policy: str = ""
    error: ErrorPublic | None = None
    snapshots: dict[str, str] = Field(default_factory=dict)
    forked_from: str | None = None
    usage: UsagePublic = Field(default_factory=UsagePublic)
    budget: BudgetIn = Field(default_factory=BudgetIn)
    pause_reason: str = ""
    awaiting: str = ""
    """While status is awaiting_approval: "plan" or "delivery"."""
    approvals: list[ApprovalPublic] = Field(default_factory=list)
