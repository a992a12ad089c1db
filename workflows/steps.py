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
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryState,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from contracts.activities import model_retried, queue_for
    from contracts.activities import purpose as activity_purpose
    from contracts.agent import AgentOutput
    from contracts.budget import USAGE_DETAIL, Usage, usage_detail, usage_from
    from contracts.investigation import ReproductionCheck
    from contracts.roles import AdversarialOutput, MemoryRead, MemoryRecorded, RoleOutput
    from contracts.runs import (
        ENVIRONMENT,
        NON_RETRYABLE_TYPES,
        Delivery,
        EnvironmentInput,
        EnvironmentOutput,
        EnvironmentRef,
        LintReport,
        PatchOutput,
        PerfReport,
        PlanOutput,
        Queues,
        RunRef,
        RunState,
        StepRecord,
        TestReport,
        VerifyOutput,
    )
    from ratchet.metrics import RUNS_ENDED, RUNS_STARTED
    from workflows import search
    from workflows.retries import model_retry_policy

T = TypeVar("T")

MODEL_STEP_LIMIT = timedelta(hours=6)
ENVIRONMENT_LIMIT = timedelta(hours=3)  # several setup commands, each within its own limit
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)


ENDED = ("completed", "failed", "cancelled", "rejected", "expired")


class StepRunner:
    """Base of the master workflows: `_state` is what their `state` query returns."""

    _state: RunState
    _queues: Queues = Queues()
    """Where model calls and sandboxed runs go (set from the run's input)."""
    _model_backoff: tuple[float, float] = (2.0, 120.0)
    """First and longest wait between tries of a model call (set from the run's input)."""
    _environment: EnvironmentRef | None = None
    """The run's environment, once its step has run: every run result names it."""
    _observed_step: tuple[str, int | None] | None = None
    """The step whose activity is being scheduled: traces name it (activities/observe.py)."""

    def _before_step(self) -> None:
        """Called before every step; a workflow may raise here to stop (e.g. when cancelled)."""

    def _started(self) -> None:
        _count(RUNS_STARTED, {"kind": self._state.kind})
        self._show_details()

    async def _prepare_environment(self, run: RunRef, heartbeat_s: float) -> RunRef:
        """The environment step: build the repository's environment or find it built; the run
        carries it from here on. (Runs recorded before this step existed go on without it.)"""
        if not workflow.patched("environment-step"):
            return run
        out: EnvironmentOutput = await self._step(
            "environment", ENVIRONMENT, EnvironmentInput(run, run.base_sha), EnvironmentOutput,
            limit=ENVIRONMENT_LIMIT, heartbeat=timedelta(seconds=heartbeat_s),
        )  # fmt: skip
        self._environment = out.environment
        return replace(run, environment=out.environment)

    def _set_phase(self, phase: str, **changes: Any) -> None:
        """Move the run to `phase`: the state, the UI's details and RatchetStatus follow."""
        self._state = replace(self._state, phase=phase, **changes)
        result = self._state.result
        if result is not None and self._environment is not None and result.environment is None:
            self._state = replace(
                self._state, result=replace(result, environment=self._environment)
            )
        search.set_status(phase)
        self._show_details()
        if phase in ENDED:
            _count(RUNS_ENDED, {"kind": self._state.kind, "outcome": phase})

    def _show_details(self) -> None:
        """The Temporal UI's current details: where the run is and what it has spent."""
        state = self._state
        lines = [f"**{state.phase}**" + (f": {state.pause_reason}" if state.pause_reason else "")]
        if state.steps:
            last = state.steps[-1]
            lines.append(f"step: {_where(last.name, last.round)}, {last.status}"
                         + (f", attempt {last.attempts}" if last.attempts > 1 else ""))  # fmt: skip
        usage, budget = state.usage, state.budget
        if usage.turns or budget != type(budget)():
            spent = f"{usage.turns} turns, {usage.tokens} tokens, ${usage.cost_usd:.4f}"
            limits = ", ".join(
                f"{name.removeprefix('max_')} ≤ {value}"
                for name, value in vars(budget).items() if value is not None
            )  # fmt: skip
            lines.append(f"used: {spent}" + (f" (budget: {limits})" if limits else ""))
        workflow.set_current_details("\n\n".join(lines))

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
        # A model call waits out an overloaded or rate-limited API at a bounded pace, however
        # long it lasts; other steps fail after a few tries.
        model = model_retried(activity)
        retry = model_retry_policy(*self._model_backoff) if model else RETRY
        self._observed_step = (name, round_)
        try:
            result: T = await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                start_to_close_timeout=limit,
                schedule_to_close_timeout=MODEL_STEP_LIMIT if model else None,
                heartbeat_timeout=heartbeat,
                retry_policy=retry,
                summary=_summary(name, activity, round_),
                task_queue=queue_for(activity, self._queues),
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
            self._charge(usage_in(err))  # what its attempts paid for counts all the same
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
        self._show_details()

    async def _child(
        self, name: str, workflow_name: str, arg: Any, result_type: type[T], *,
        child_id: str, round_: int | None = None,
        search_attributes: TypedSearchAttributes | None = None, summary: str | None = None,
        child_run: bool = False,
    ) -> T:  # fmt: skip
        """Run a child workflow as one step (its own steps show in its own history). A child
        *run* (an investigation's fix) has a usage of its own: it is added to this run's, and
        kept apart under its id, whether it completed or failed."""
        self._before_step()
        index = len(self._state.steps)
        started = workflow.now().isoformat()
        self._set_step(index, StepRecord(name, "running", 1, started, round=round_))
        try:
            result: T = await workflow.execute_child_workflow(
                workflow_name, arg, id=child_id, result_type=result_type,
                static_summary=summary or _where(name, round_),
                search_attributes=search_attributes,
            )  # fmt: skip
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                self._set_step(index, StepRecord(name, "cancelled", 1, started,
                                                 workflow.now().isoformat(), round_))  # fmt: skip
                raise asyncio.CancelledError from err
            kind, message = _root_cause(err)
            if child_run:
                self._charge_child(child_id, usage_in(err))
            self._set_step(index, StepRecord(name, "failed", 1, started, workflow.now().isoformat(),
                                             round_, message[:500]))  # fmt: skip
            raise self._fail(kind, f"step {name} failed: {message}") from err
        if child_run:
            self._charge_child(child_id, getattr(result, "usage", None) or Usage())
        self._set_step(index, StepRecord(name, "completed", 1, started, workflow.now().isoformat(),
                                         round_, _detail(result)))  # fmt: skip
        return result

    def _charge(self, usage: Usage) -> None:
        """Add paid calls to the run's usage (the budget is checked against it)."""
        if usage != Usage():
            self._state = replace(self._state, usage=self._state.usage + usage)
            self._show_details()

    def _charge_child(self, child_id: str, usage: Usage) -> None:
        children = dict(self._state.child_usage)
        children[child_id] = children.get(child_id, Usage()) + usage
        self._state = replace(self._state, child_usage=children)
        self._charge(usage)

    def _fail(self, kind: str, message: str) -> ApplicationError:
        """The run's failure: it carries the run's usage, so a parent counts what it paid."""
        self._state = replace(self._state, error={"type": kind, "message": message})
        return ApplicationError(
            message, usage_detail(self._state.usage), type=kind, non_retryable=True
        )


def _where(step: str, round_: int | None) -> str:
    return step + (f" (round {round_})" if round_ else "")


def _summary(step: str, activity: str, round_: int | None) -> str:
    purpose = activity_purpose(activity)
    return f"{_where(step, round_)}: {purpose}" if purpose else _where(step, round_)


def _count(counter: Any, attributes: dict[str, str]) -> None:
    """A metric from workflow code: recorded once, live, never again while a history replays."""
    if workflow.unsafe.is_replaying():
        return
    with workflow.unsafe.sandbox_unrestricted():
        counter.add(1, attributes)


def _test_detail(r: TestReport) -> str:
    verdict = "passed" if r.passed else f"failed (exit {r.exit_code})"
    if r.passed_count or r.failed_count:
        verdict += f": {r.passed_count} passed, {r.failed_count} failed"
    if r.flaky:
        verdict += f", {len(r.flaky)} flaky"
    if r.killed_by:
        verdict += f", killed by {', '.join(r.killed_by)}"
    if r.cannot_run:
        verdict += f"; the suite cannot run: {r.cannot_run[:300]}"
    if r.restored_tests:
        verdict += f"; graded with the original {', '.join(r.restored_tests)}"
    sandbox = r.isolation.split(":", 1)[0]
    return f"{verdict} in {r.duration_s:.1f}s [sandbox: {sandbox}]"


def _detail(result: object) -> str:
    describe: Callable[[Any], str] | None = _DETAILS.get(type(result))
    return describe(result) if describe else ""


_DETAILS: dict[type, Callable[[Any], str]] = {
    TestReport: lambda r: _test_detail(r),
    EnvironmentOutput: lambda r: (
        f"cache hit ({r.environment.source})"
        if r.cache_hit
        else f"built in {r.duration_s:.1f} s ({r.environment.source})"
    ),
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
    ReproductionCheck: lambda r: ("matches: " if r.matched else "refused: ") + r.detail[:400],
}


def usage_in(err: BaseException) -> Usage:
    """The usage a failed step or child carries (its paid calls), from the first failure in its
    chain that carries one."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            for detail in cause.details:
                if isinstance(detail, dict) and USAGE_DETAIL in detail:
                    return usage_from(detail[USAGE_DETAIL])
        cause = getattr(cause, "cause", None) or cause.__cause__
    return Usage()


def _root_cause(err: BaseException) -> tuple[str, str]:
    """The first application failure under the step (an activity's, possibly inside a child)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "StepFailed", cause.message
        cause = getattr(cause, "cause", None) or cause.__cause__
    return "StepFailed", str(err.__cause__ or err)
