"""Every activity in one registry: the queue it runs on, what it does in the words a person
watching the Temporal UI would use, and how its failures are retried."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from contracts import agent, drift, investigation, roles, runs, steps


@dataclass(frozen=True)
class ActivitySpec:
    queue: Literal["main", "model", "sandbox"]
    """"model": model calls; "sandbox": repository code runs; "main": the rest (deploy/README)."""
    purpose: str
    retry: Literal["step", "model"] = "step"
    """"model": unlimited tries within the step's limit (an overloaded API delays, never fails,
    a run); "step": a few tries."""
    limit_s: float = 120.0
    """How long one try may take (start to close), plus `per_test` times the run's test
    timeout for an activity that runs the repository's tests."""
    per_test: float = 0.0
    heartbeat: bool = False
    """It heartbeats: a try whose worker stops for the run's heartbeat timeout is retried."""
    heartbeat_s: float | None = None
    """A heartbeat timeout of its own, whatever the run's."""
    local: bool = False
    """Light bookkeeping of the main queue (a few reads and a verdict): a local activity, run by
    the worker that runs the workflow within its workflow task, without the round trip of an
    activity task through the server."""

    def limit(self, test_timeout_s: float) -> float:
        return self.limit_s + self.per_test * test_timeout_s

    def heartbeat_timeout(self, run_heartbeat_s: float) -> float | None:
        """Its heartbeat timeout given the run's (None: it does not heartbeat)."""
        if self.heartbeat_s is not None:
            return self.heartbeat_s
        return run_heartbeat_s if self.heartbeat else None

    def summary(self, step: str, round_: int | None) -> str:
        """What the Temporal UI shows of one of its steps: "patch (round 2): ask the policy"."""
        label = runs.step_label(step, round_)
        return f"{label}: {self.purpose}" if self.purpose else label


MINUTE = 60.0


def _model(purpose: str, minutes: float = 10) -> ActivitySpec:
    return ActivitySpec("model", purpose, "model", minutes * MINUTE, heartbeat=True)


def _sandbox(purpose: str, limit_s: float, per_test: float = 1.0, *,
             heartbeat: bool = False) -> ActivitySpec:  # fmt: skip
    return ActivitySpec("sandbox", purpose, limit_s=limit_s, per_test=per_test, heartbeat=heartbeat)


def _main(purpose: str, minutes: float = 5, *, local: bool = False) -> ActivitySpec:
    return ActivitySpec("main", purpose, limit_s=minutes * MINUTE, local=local)


ACTIVITIES: dict[str, ActivitySpec] = {
    steps.PREPARE: _main("mirror the repository and snapshot the base", 15),
    # Several setup commands, each within its own limit.
    steps.ENVIRONMENT: _sandbox(
        "build the repository's environment, or find it built", 3 * 60 * MINUTE, 0.0, heartbeat=True
    ),
    steps.RUN_TESTS: _sandbox("run the repository's tests in the sandbox", 120, heartbeat=True),
    steps.PLAN: _model("ask the policy for a plan"),
    steps.PATCH: _model("ask the policy for a patch (runs recorded before the agent loop)"),
    steps.LINT: _sandbox("lint the snapshot (new findings only)", 10 * MINUTE, 0.0),
    steps.PERFORMANCE: _sandbox("benchmark the base against the patch", 300, 4.0),
    steps.VERIFY: _main("grade the gates", 2, local=True),
    steps.DELIVER: _main("commit the patch to a ratchet/ branch", 2),
    steps.SNAPSHOT_DIFF: _main("keep the work so far as a patch", 2),
    agent.MODEL_TURN: _model("one model turn of the agent"),
    agent.RUN_TOOL: replace(_sandbox("one tool call of the agent", 300), heartbeat_s=60.0),
    roles.ROLE_CALL: _model("ask a role for a structured answer"),
    roles.ADVERSARIAL_RUN: _sandbox("run the red team's tests against the patch", 120, 5.0),
    roles.ADD_TESTS: _main("add the valid red-team tests"),
    roles.MEMORY_READ: _main("read the repository's memory", 2, local=True),
    roles.MEMORY_RECORD: _main("record what this run learned", 2),
    investigation.INV_PREPARE: _main("mirror the repository and reproduce", 15),
    investigation.CHECK_REPRODUCTION: _sandbox(
        "run the written test: is it the event's error?", 120, heartbeat=True
    ),
    investigation.PROBE: _sandbox("test one commit of the history", 120, heartbeat=True),
    investigation.HISTORY: _main("list the commits to search", local=True),
    investigation.CAPACITY: _sandbox("count the cores free for probes", 30, 0.0),
    investigation.LOCALIZE: _main("find the guilty hunks of the culprit", local=True),
    investigation.REVERT: _main("revert the guilty hunks"),
    investigation.REPORT: _main("write the root-cause report"),
    drift.DRIFT_PREPARE: _main("read the repository's specs"),
    drift.CHECK_CLAIMS: _sandbox("test each claim of the specs", 120, 10.0),
}


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


def spec(activity: str) -> ActivitySpec:
    """The activity's entry (an unknown name gets a main-queue step's defaults)."""
    return ACTIVITIES.get(activity) or ActivitySpec("main", "")


def purpose(activity: str) -> str:
    spec = ACTIVITIES.get(activity)
    return spec.purpose if spec else ""
