"""Every activity, observed the same way: its span says which attempt it is, which run it
serves and which step (and round) of the run it is, and its duration goes to the step-duration
metric by outcome; its result comes back with the step list's line for it
(activities/details.py). Every master run is counted as it starts and as it ends, by outcome.

The step travels as a header the workflow side adds when it schedules the activity (a header is
not part of what replay compares), read from the workflow's steps object (`_observed`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.common import heartbeating
from activities.details import with_detail
from ratchet.metrics import RUNS_ENDED, RUNS_STARTED, STEP_DURATION
from ratchet.telemetry import RUN_ID_ATTRIBUTE

STEP_HEADER = "ratchet-step"
STEP_ATTRIBUTE = "ratchet.step"
ROUND_ATTRIBUTE = "ratchet.round"


class ObserveInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservedActivity(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _StepNaming


class _StepNaming(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_StepHeaders(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        """Counts the master runs started, and ended by outcome (the phase they end in)."""
        instance = workflow.instance()
        started = _run_state(instance)
        if started is None:  # the agent loop: a part of a run, not a run
            return await super().execute_workflow(input)
        _count(RUNS_STARTED, {"kind": started.kind})
        # Not `finally`: a run evicted from the worker's cache is closed outside the workflow's
        # event loop (GeneratorExit), and it has not ended.
        try:
            result = await super().execute_workflow(input)
        except (Exception, asyncio.CancelledError):
            _count_end(instance)
            raise
        _count_end(instance)
        return result


ENDED = ("completed", "failed", "cancelled", "rejected", "expired")


def _count_end(instance: object) -> None:
    ended = _run_state(instance)
    if ended is not None and ended.phase in ENDED:
        _count(RUNS_ENDED, {"kind": ended.kind, "outcome": ended.phase})


def _run_state(instance: object) -> Any:
    return getattr(getattr(instance, "steps", None), "state", None)


def _count(counter: Any, attributes: dict[str, str]) -> None:
    """A metric from a workflow: recorded once, live, never again while a history replays."""
    if workflow.unsafe.is_replaying():
        return
    with workflow.unsafe.sandbox_unrestricted():
        counter.add(1, attributes)


class _StepHeaders(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        _name_step(input)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        _name_step(input)
        return super().start_local_activity(input)


def _name_step(input: StartActivityInput | StartLocalActivityInput) -> None:
    step = _observed(workflow.instance())
    if step:
        payload = workflow.payload_converter().to_payload(list(step))
        input.headers = {**input.headers, STEP_HEADER: payload}


def _observed(instance: object) -> Any:
    """The step being scheduled: a master workflow's steps object knows it, the agent loop
    keeps its own."""
    steps = getattr(instance, "steps", None)
    return getattr(steps, "observed", None) or getattr(instance, "_observed_step", None)


def _step_of(input: ExecuteActivityInput) -> tuple[str, int | None] | None:
    payload = input.headers.get(STEP_HEADER)
    if payload is None:
        return None
    try:
        name, round_ = activity.payload_converter().from_payload(payload, list)
    except (ValueError, TypeError):  # a header this version does not read: no step named
        return None
    return str(name), round_ if isinstance(round_, int) else None


class _ObservedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        # Runs inside the tracing interceptor's RunActivity span: a retry shows as attempt N.
        span = trace.get_current_span()
        span.set_attributes({
            "temporal.activity.attempt": info.attempt,
            "temporal.activity.type": info.activity_type,
            RUN_ID_ATTRIBUTE: info.workflow_id,
        })  # fmt: skip
        if (step := _step_of(input)) is not None:
            span.set_attribute(STEP_ATTRIBUTE, step[0])
            if step[1] is not None:
                span.set_attribute(ROUND_ATTRIBUTE, step[1])
        started = time.monotonic()
        outcome = "completed"
        try:
            if info.heartbeat_timeout:
                # Alive for as long as the worker works on the step, not only while a command
                # ticks: a worker new to a run (fetching the repository and a snapshot's
                # bundle, building the environment) must not look like a dead one.
                async with heartbeating():
                    return with_detail(await super().execute_activity(input))
            # The step list's line for the result is written here, once for every activity.
            return with_detail(await super().execute_activity(input))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException:
            outcome = "failed"
            raise
        finally:
            STEP_DURATION.record(
                time.monotonic() - started,
                {"step": info.activity_type, "outcome": outcome, "retry": info.attempt > 1},
            )
