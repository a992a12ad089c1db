"""Every activity in one registry: the queue it runs on, what it does in the words a person
watching the Temporal UI would use, and how its failures are retried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts import agent, drift, investigation, roles, runs


@dataclass(frozen=True)
class ActivitySpec:
    queue: Literal["main", "model", "sandbox"]
    """"model": model calls; "sandbox": repository code runs; "main": the rest (deploy/README)."""
    purpose: str
    retry: Literal["step", "model"] = "step"
    """"model": unlimited tries within the step's limit (an overloaded API delays, never fails,
    a run); "step": a few tries."""


def _model(purpose: str) -> ActivitySpec:
    return ActivitySpec("model", purpose, "model")


def _sandbox(purpose: str) -> ActivitySpec:
    return ActivitySpec("sandbox", purpose)


def _main(purpose: str) -> ActivitySpec:
    return ActivitySpec("main", purpose)


ACTIVITIES: dict[str, ActivitySpec] = {
    runs.PREPARE: _main("mirror the repository and snapshot the base"),
    runs.ENVIRONMENT: _sandbox("build the repository's environment, or find it built"),
    runs.RUN_TESTS: _sandbox("run the repository's tests in the sandbox"),
    runs.PLAN: _model("ask the policy for a plan"),
    runs.PATCH: _model("ask the policy for a patch (runs recorded before the agent loop)"),
    runs.LINT: _sandbox("lint the snapshot (new findings only)"),
    runs.PERFORMANCE: _sandbox("benchmark the base against the patch"),
    runs.VERIFY: _main("grade the gates"),
    runs.DELIVER: _main("commit the patch to a ratchet/ branch"),
    runs.SNAPSHOT_DIFF: _main("keep the work so far as a patch"),
    agent.MODEL_TURN: _model("one model turn of the agent"),
    agent.RUN_TOOL: _sandbox("one tool call of the agent"),
    roles.ROLE_CALL: _model("ask a role for a structured answer"),
    roles.ADVERSARIAL_RUN: _sandbox("run the red team's tests against the patch"),
    roles.ADD_TESTS: _main("add the valid red-team tests"),
    roles.MEMORY_READ: _main("read the repository's memory"),
    roles.MEMORY_RECORD: _main("record what this run learned"),
    investigation.INV_PREPARE: _main("mirror the repository and reproduce"),
    investigation.CHECK_REPRODUCTION: _sandbox("run the written test: is it the event's error?"),
    investigation.PROBE: _sandbox("test one commit of the history"),
    investigation.HISTORY: _main("list the commits to search"),
    investigation.LOCALIZE: _main("find the guilty hunks of the culprit"),
    investigation.REVERT: _main("revert the guilty hunks"),
    investigation.REPORT: _main("write the root-cause report"),
    drift.DRIFT_PREPARE: _main("read the repository's specs"),
    drift.CHECK_CLAIMS: _sandbox("test each claim of the specs"),
}
MODEL_ACTIVITIES = frozenset(name for name, s in ACTIVITIES.items() if s.queue == "model")
SANDBOX_ACTIVITIES = frozenset(name for name, s in ACTIVITIES.items() if s.queue == "sandbox")


def queue_for(activity: str, queues: runs.Queues) -> str | None:
    """The task queue an activity is scheduled on (None: the workflow's own)."""
    spec = ACTIVITIES.get(activity)
    if spec is not None and spec.queue == "model":
        return queues.model or None
    if spec is not None and spec.queue == "sandbox":
        return queues.sandbox or None
    return None


def model_retried(activity: str) -> bool:
    """Whether the activity is retried as a model call (see ActivitySpec.retry)."""
    spec = ACTIVITIES.get(activity)
    return spec is not None and spec.retry == "model"


def purpose(activity: str) -> str:
    spec = ACTIVITIES.get(activity)
    return spec.purpose if spec else ""
