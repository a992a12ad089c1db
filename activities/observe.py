"""Every activity, observed the same way: its span says which attempt it is and which run it
serves, and its duration goes to the step-duration metric by outcome."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ratchet.metrics import STEP_DURATION
from ratchet.telemetry import RUN_ID_ATTRIBUTE


class ObserveInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservedActivity(next)


class _ObservedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        # Runs inside the tracing interceptor's RunActivity span: a retry shows as attempt N.
        trace.get_current_span().set_attributes({
            "temporal.activity.attempt": info.attempt,
            "temporal.activity.type": info.activity_type,
            RUN_ID_ATTRIBUTE: info.workflow_id,
        })  # fmt: skip
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
