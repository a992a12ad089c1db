"""Request and response models, named for their role."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(min_length=1, max_length=4096, description="absolute path or git URL")
    goal: str = Field(min_length=1, description="what the change should achieve")
    base_ref: str = Field(default="HEAD", min_length=1, max_length=256)
    test_command: str | None = Field(default=None, max_length=4096)
    policy: Literal["anthropic", "scripted"] | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    max_repair_rounds: int | None = Field(default=None, ge=0, le=20)


class TaskAccepted(BaseModel):
    run_id: str
    workflow_id: str
    status_url: str
    temporal_ui_url: str
    trace_id: str
    policy: str
    forked_from: str | None = None


class ForkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_step: str = Field(min_length=1, max_length=100, description='e.g. "base", "patch-1"')
    goal: str | None = Field(default=None, min_length=1)
    policy: Literal["anthropic", "scripted"] | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    max_repair_rounds: int | None = Field(default=None, ge=0, le=20)


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
    commit: str | None = None
    refactor_kept: bool | None = None
    isolation: str | None = None


class ErrorPublic(BaseModel):
    type: str
    message: str


class RunPublic(BaseModel):
    run_id: str
    workflow_id: str
    kind: str
    status: Literal["running", "completed", "failed", "cancelled"]
    steps: list[StepPublic]
    result: RunResultPublic | None
    trace_id: str
    temporal_ui_url: str
    policy: str = ""
    error: ErrorPublic | None = None
    snapshots: dict[str, str] = Field(default_factory=dict)
    forked_from: str | None = None
