"""The cores free for an investigation's probes, as a sandbox worker sees them."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from activities.common import tag_span
from contracts.investigation import CAPACITY, Capacity, CapacityInput
from gym.runner import RUNNING, usable_cores


@activity.defn(name=CAPACITY)
async def capacity(arg: CapacityInput) -> Capacity:
    """This worker's usable cores less the repository commands it runs now, and how many
    workers poll the sandbox queue (Temporal's list of its pollers)."""
    tag_span(arg.run_id)
    return Capacity(usable_cores(), RUNNING[0], await _pollers(arg.sandbox_queue),
                    activity.info().attempt)  # fmt: skip


async def _pollers(queue: str) -> int:
    """The workers polling `queue` for activities (1 when the server cannot say)."""
    client = activity.client()
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )  # fmt: skip
    try:
        described = await client.workflow_service.describe_task_queue(
            request, timeout=timedelta(seconds=5)
        )
    except RPCError:
        return 1
    return max(1, len({p.identity for p in described.pollers}))
