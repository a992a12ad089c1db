"""Every activity, observed the same way: its span says which attempt it is, which run it
serves and which step (and round) of the run it is, and its duration goes to the step-duration
metric by outcome.

The step travels as a header the workflow side adds when it schedules the activity (a header is
not part of what replay compares), read from the workflow instance's `_observed_step`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from ratchet.metrics import STEP_DURATION
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


class _StepHeaders(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        step = getattr(workflow.instance(), "_observed_step", None)
        if step:
            payload = workflow.payload_converter().to_payload(list(step))
            input.headers = {**input.headers, STEP_HEADER: payload}
        return super().start_activity(input)


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
            return await super().execute_activity(input)
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
