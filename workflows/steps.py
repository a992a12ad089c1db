"""Step bookkeeping shared by the master workflows: run an activity or a child workflow as a
named step and keep the list that GET /runs/{id} shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryState,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from workflows.agent_shared import AgentOutput
    from workflows.roles_shared import AdversarialOutput, MemoryRead, MemoryRecorded, RoleOutput
    from workflows.shared import (
        NON_RETRYABLE_TYPES,
        Delivery,
        LintReport,
        PatchOutput,
        PerfReport,
        PlanOutput,
        RunState,
        StepRecord,
        TestReport,
        VerifyOutput,
    )

T = TypeVar("T")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)


class StepRunner:
    """Base of the master workflows: `_state` is what their `state` query returns."""

    _state: RunState

    def _before_step(self) -> None:
        """Called before every step; a workflow may raise here to stop (e.g. when cancelled)."""

    async def _step(
        self,
        name: str,
        activity: str,
        arg: Any,
        result_type: type[T],
        *,
        limit: timedelta,
        heartbeat: timedelta | None,
        round_: int | None = None,
    ) -> T:
        """Run one activity and keep the step list that GET /runs/{id} shows."""
        self._before_step()
        index = len(self._state.steps)
        started = workflow.now().isoformat()
        self._set_step(index, StepRecord(name, "running", 1, started, round=round_))
        try:
            result: T = await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                start_to_close_timeout=limit,
                heartbeat_timeout=heartbeat,
                retry_policy=RETRY,
                summary=f"{name}" + (f" (round {round_})" if round_ else ""),
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                self._set_step(index, StepRecord(name, "cancelled", 1, started,
                                                 workflow.now().isoformat(), round_))  # fmt: skip
                raise asyncio.CancelledError from err
            attempts = (
                RETRY.maximum_attempts
                if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
                else 1
            )
            kind, message = _root_cause(err)
            self._set_step(
                index,
                StepRecord(name, "failed", attempts, started, workflow.now().isoformat(),
                           round_, message[:500]),
            )  # fmt: skip
            raise self._fail(kind, f"step {name} failed: {message}") from err
        attempts = int(getattr(result, "attempt", 1))
        self._set_step(
            index,
            StepRecord(name, "completed", attempts, started, workflow.now().isoformat(), round_,
                       _detail(result)),
        )  # fmt: skip
        return result

    def _record_snapshot(self, step: str, sha: str) -> None:
        self._state = replace(self._state, snapshots={**self._state.snapshots, step: sha})

    def _set_step(self, index: int, record: StepRecord) -> None:
        steps = list(self._state.steps)
        if index < len(steps):
            steps[index] = record
        else:
            steps.append(record)
        self._state = replace(self._state, steps=steps)

    async def _child(
        self, name: str, workflow_name: str, arg: Any, result_type: type[T], *,
        child_id: str, round_: int | None = None,
    ) -> T:  # fmt: skip
        """Run a child workflow as one step (its own steps show in its own history)."""
        self._before_step()
        index = len(self._state.steps)
        started = workflow.now().isoformat()
        self._set_step(index, StepRecord(name, "running", 1, started, round=round_))
        try:
            result: T = await workflow.execute_child_workflow(
                workflow_name, arg, id=child_id, result_type=result_type,
                static_summary=f"{name}" + (f" (round {round_})" if round_ else ""),
            )  # fmt: skip
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                self._set_step(index, StepRecord(name, "cancelled", 1, started,
                                                 workflow.now().isoformat(), round_))  # fmt: skip
                raise asyncio.CancelledError from err
            kind, message = _root_cause(err)
            self._set_step(index, StepRecord(name, "failed", 1, started, workflow.now().isoformat(),
                                             round_, message[:500]))  # fmt: skip
            raise self._fail(kind, f"step {name} failed: {message}") from err
        self._set_step(index, StepRecord(name, "completed", 1, started, workflow.now().isoformat(),
                                         round_, _detail(result)))  # fmt: skip
        return result

    def _fail(self, kind: str, message: str) -> ApplicationError:
        self._state = replace(self._state, error={"type": kind, "message": message})
        return ApplicationError(message, type=kind, non_retryable=True)


def _test_detail(r: TestReport) -> str:
    verdict = "passed" if r.passed else f"failed (exit {r.exit_code})"
    if r.passed_count or r.failed_count:
        verdict += f": {r.passed_count} passed, {r.failed_count} failed"
    if r.flaky:
        verdict += f", {len(r.flaky)} flaky"
    if r.killed_by:
        verdict += f", killed by {', '.join(r.killed_by)}"
    if r.restored_tests:
        verdict += f"; graded with the original {', '.join(r.restored_tests)}"
    sandbox = r.isolation.split(":", 1)[0]
    return f"{verdict} in {r.duration_s:.1f}s [sandbox: {sandbox}]"


def _detail(result: object) -> str:
    describe: Callable[[Any], str] | None = _DETAILS.get(type(result))
    return describe(result) if describe else ""


_DETAILS: dict[type, Callable[[Any], str]] = {
    TestReport: lambda r: _test_detail(r),
    VerifyOutput: lambda r: ", ".join(
        f"{g.name} {'ok' if g.passed else 'FAILED'}" for g in r.gates
    ),
    PatchOutput: lambda r: r.message,
    PlanOutput: lambda r: f"by {r.policy_label}",
    PerfReport: lambda r: r.detail[:200],
    LintReport: lambda r: (
        f"{r.count} findings ({r.command.split()[0]})"
        if r.configured and r.ok
        else r.detail[:200]
        if r.configured
        else "no lint command"
    ),
    Delivery: lambda r: f"branch {r.branch}, {r.files_changed} files",
    AgentOutput: lambda r: f"{r.stop}: {(r.reason or r.summary)[:200]}",
    RoleOutput: lambda r: r.summary + (" (answer retried once)" if r.consumed > 1 else ""),
    MemoryRead: lambda r: f"{len(r.ids)} entries" + (f": {', '.join(r.ids)}" if r.ids else ""),
    MemoryRecorded: lambda r: f"version {r.version}: +{r.added} entries, {r.stale} marked stale",
    AdversarialOutput: lambda r: f"{r.tried} tests, {r.failing} failing",
}


def _root_cause(err: BaseException) -> tuple[str, str]:
    """The first application failure under the step (an activity's, possibly inside a child)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "StepFailed", cause.message
        cause = getattr(cause, "cause", None) or cause.__cause__
    return "StepFailed", str(err.__cause__ or err)
