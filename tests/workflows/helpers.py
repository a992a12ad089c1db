from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent


async def wait_for_end(
    api: httpx.AsyncClient, run_id: str, timeout_s: float = 90, until_not: str = "running"
) -> dict[str, Any]:
    """Poll until the run leaves `until_not` (by default: it ended, paused or awaits approval)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await api.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] not in ("running", until_not):
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still running after {timeout_s}s: {run}")
        await asyncio.sleep(0.2)


def payloads(event: HistoryEvent) -> list[Payload]:
    """The payloads an event carries: a workflow's or an activity's input, a result."""
    found: list[Payload] = []
    for name in ("workflow_execution_started_event_attributes",
                 "activity_task_scheduled_event_attributes",
                 "activity_task_completed_event_attributes",
                 "start_child_workflow_execution_initiated_event_attributes"):  # fmt: skip
        if event.HasField(name):
            attributes = getattr(event, name)
            holder = attributes.input if hasattr(attributes, "input") else attributes.result
            found += list(holder.payloads)
    return found
