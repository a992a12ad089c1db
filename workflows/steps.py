"""The steps of one run: each runs an activity or a child workflow as a named step and keeps the
run's state (the step list GET /runs/{id} shows, its usage, phase and snapshots). Every master
workflow owns one `Steps` and hands it to the parts that run steps for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryState,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from contracts import runs
    from contracts import steps as io
    from contracts.activities import queue_for, spec
    from contracts.agent import AGENT_WORKFLOW, AgentInput, AgentOutput
    from contracts.budget import Usage, usage_detail
    from workflows import search
    from workflows.failures import RETRY, model_retry_policy, root_cause, usage_in

T = TypeVar("T")
R = TypeVar("R", bound=runs.RunResult)

MODEL_STEP_LIMIT = timedelta(hours=6)


class Cancelled(Exception):
    """Raised inside a workflow to leave its pipeline (a forward run then delivers a draft)."""


class Steps:
    """One run's steps and state; `state` is what the workflow's `state` query returns."""

    def __init__(self, kind: str, state: type[runs.RunState] = runs.RunState) -> None:
        self.state = state(run_id="", kind=kind, trace_id="", policy_label="")
        self.queues = runs.Queues()
        """Where model calls and sandboxed runs go (set from the run's input)."""
        self.model_backoff: tuple[float, float] = (2.0, 120.0)
        """First and longest wait between tries of a model call (set from the run's input)."""
        self.environment: runs.EnvironmentRef | None = None
        """The run's environment, once its step has run: every run result names it."""
        self.test_timeout_s = 600.0
        self.heartbeat_s = 30.0
        """The run's limits that activity limits are made from (contracts/activities.py)."""
        self.observed: tuple[str, int | None] | None = None
        """The step whose activity is being scheduled: traces name it (activities/observe.py)."""
        self.cancel_requested = False
        """A person cancelled the run: the next step raises Cancelled instead of running."""

    def start(self, queues: runs.Queues, test_timeout_s: float, heartbeat_s: float,
              **state: Any) -> None:  # fmt: skip
        self.queues, self.test_timeout_s, self.heartbeat_s = queues, test_timeout_s, heartbeat_s
        self.update(**state)

    def update(self, **changes: Any) -> None:
        self._set(replace(self.state, **changes))

    def _set(self, state: runs.RunState) -> None:
        self.state = state
        workflow.set_current_details(state.details())

    async def run(self, work: Awaitable[R]) -> R:
        """The run's work to its end; its phase says how it ended (a cancelled run keeps what
        it found: an investigation whose issue was resolved or ignored in Sentry)."""
        try:
            result = await work
        except asyncio.CancelledError:
            self.set_phase("cancelled")
            raise
        except Exception:
            self.set_phase("failed")
            raise
        return self.finish(result)

    def finish(self, result: R, phase: str = "completed", **changes: Any) -> R:
        """The run ended in `phase` with `result`, which carries the run's usage as it ends."""
        result = replace(result, usage=self.state.usage)
        self.set_phase(phase, result=result, **changes)
        return result

    def set_phase(self, phase: str, **changes: Any) -> None:
        """Move the run to `phase`: the state, the UI's details and RatchetStatus follow."""
        self.state = replace(self.state, phase=phase, **changes)
        result = self.state.result
        if result is not None and self.environment is not None and result.environment is None:
            self.state = replace(self.state, result=replace(result, environment=self.environment))
        search.set_status(phase)
        self._set(self.state)

    def keep_result(self, result: runs.RunResult) -> None:
        """What the run has so far: kept when it pauses, waits, fails or is cancelled."""
        self.update(result=result)

    async def prepare_environment(self, run: runs.RunRef) -> runs.RunRef:
        """The environment step: build the repository's environment or find it built; the run
        carries it from here on. (Runs recorded before this step existed go on without it.)"""
        if not workflow.patched("environment-step"):
            return run
        arg = io.EnvironmentInput(run, run.base_sha)
        out = await self.step("environment", io.ENVIRONMENT, arg, io.EnvironmentOutput)
        self.environment = out.environment
        return replace(run, environment=out.environment)

    async def step(
        self, name: str, activity: str, arg: Any, result_type: type[T], *,
        round_: int | None = None, limit: timedelta | None = None, local: bool | None = None,
    ) -> T:  # fmt: skip
        """Run one activity and keep the step list that GET /runs/{id} shows. Its limits, queue,
        retries and whether it is a local activity are the registry's (contracts/activities.py)
        unless `limit` or `local` is given."""
        self._go_on()
        index = self._begin(name, round_)
        entry = spec(activity)
        # A model call waits out an overloaded or rate-limited API at a bounded pace, however
        # long it lasts; other steps fail after a few tries.
        model = entry.retry == "model"
        self.observed = (name, round_)
        heartbeat_s = entry.heartbeat_timeout(self.heartbeat_s)
        heartbeat = None if heartbeat_s is None else timedelta(seconds=heartbeat_s)
        timeout = limit or timedelta(seconds=entry.limit(self.test_timeout_s))
        try:
            if (entry.local if local is None else local) and workflow.patched("local-bookkeeping"):
                result: T = await workflow.execute_local_activity(
                    activity, arg, result_type=result_type, start_to_close_timeout=timeout,
                    retry_policy=RETRY, summary=entry.summary(name, round_),
                )  # fmt: skip
            else:
                result = await workflow.execute_activity(
                    activity, arg, result_type=result_type, start_to_close_timeout=timeout,
                    schedule_to_close_timeout=MODEL_STEP_LIMIT if model else None,
                    heartbeat_timeout=heartbeat,
                    retry_policy=model_retry_policy(*self.model_backoff) if model else RETRY,
                    summary=entry.summary(name, round_),
                    task_queue=queue_for(activity, self.queues),
                )  # fmt: skip
        except ActivityError as err:
            spent = err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
            self.charge(usage_in(err))  # what its attempts paid for counts all the same
            raise self._failed(index, err, RETRY.maximum_attempts if spent else 1) from err
        self._end(index, "completed", int(getattr(result, "attempt", 1)), result)
        return result

    async def child(
        self, name: str, workflow_name: str, arg: Any, result_type: type[T], *,
        child_id: str, round_: int | None = None,
        search_attributes: TypedSearchAttributes | None = None, summary: str | None = None,
        child_run: bool = False,
    ) -> T:  # fmt: skip
        """Run a child workflow as one step (its own steps show in its own history). A child
        *run* (an investigation's fix) has a usage of its own: it is added to this run's, and
        kept apart under its id, whether it completed or failed."""
        self._go_on()
        index = self._begin(name, round_)
        try:
            result: T = await workflow.execute_child_workflow(
                workflow_name, arg, id=child_id, result_type=result_type,
                static_summary=summary or runs.step_label(name, round_),
                search_attributes=search_attributes,
            )  # fmt: skip
        except ChildWorkflowError as err:
            if child_run and not is_cancelled_exception(err):
                self._set(self.state.charged(usage_in(err), child_id))
            raise self._failed(index, err, 1) from err
        if child_run:
            self._set(self.state.charged(getattr(result, "usage", None) or Usage(), child_id))
        self._end(index, "completed", 1, result)
        return result

    async def agent(self, name: str, child_id: str, round_: int, **fields: Any) -> AgentOutput:
        """An agent loop (a child workflow) as one step, within the run's limits; the run's
        usage becomes the loop's running total."""
        arg = AgentInput(
            **fields, test_timeout_s=self.test_timeout_s, heartbeat_timeout_s=self.heartbeat_s,
            usage=self.state.usage, started_at=workflow.info().start_time.isoformat(),
            queues=self.queues, retry_initial_s=self.model_backoff[0],
            retry_max_s=self.model_backoff[1],
        )  # fmt: skip
        out = await self.child(name, AGENT_WORKFLOW, arg, AgentOutput, child_id=child_id,
                               round_=round_)  # fmt: skip
        self.update(usage=out.usage)
        return out

    def record_snapshot(self, step: str, sha: str) -> None:
        self.state = replace(self.state, snapshots={**self.state.snapshots, step: sha})

    def charge(self, usage: Usage) -> None:
        """Add paid calls to the run's usage (the budget is checked against it)."""
        if usage != Usage():
            self._set(self.state.charged(usage))

    def fail(self, kind: str, message: str) -> ApplicationError:
        """The run's failure: it carries the run's usage, so a parent counts what it paid."""
        self.state = replace(self.state, error={"type": kind, "message": message})
        return ApplicationError(
            message, usage_detail(self.state.usage), type=kind, non_retryable=True
        )

    def _go_on(self) -> None:
        if self.cancel_requested:
            raise Cancelled

    def _begin(self, name: str, round_: int | None) -> int:
        self._set(self.state.begun(name, round_, workflow.now().isoformat()))
        return len(self.state.steps) - 1

    def _end(self, index: int, status: str, attempts: int, result: object = None,
             detail: str = "") -> None:  # fmt: skip
        """The step's record as it ends; its line comes with its result (StepResult)."""
        detail = detail or str(getattr(result, "step_detail", "") or "")
        self._set(self.state.ended(index, status, attempts, workflow.now().isoformat(), detail))

    def _failed(self, index: int, err: BaseException, attempts: int) -> BaseException:
        """The step's record for a failure, and what the workflow raises for it."""
        if is_cancelled_exception(err):
            self._end(index, "cancelled", 1)
            return asyncio.CancelledError()
        kind, message = root_cause(err)
        self._end(index, "failed", attempts, detail=message[:500])
        return self.fail(kind, f"step {self.state.steps[index].name} failed: {message}")
