"""A bug in workflow code fails the run with its message; it does not hang the run on a workflow
task that fails again and again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker


@workflow.defn(name="BuggyWorkflow")
class BuggyWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        steps: dict[str, str] = {}
        return steps[name]  # a KeyError: the kind of slip a workflow change can carry


async def test_a_bug_in_workflow_code_fails_the_run_with_its_message(client: Client) -> None:
    from worker import WORKFLOW_FAILURE_TYPES  # here: the sandbox re-imports this module

    queue = f"bugs-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[BuggyWorkflow],
                      workflow_failure_exception_types=WORKFLOW_FAILURE_TYPES):  # fmt: skip
        with pytest.raises(WorkflowFailureError) as caught:
            await client.execute_workflow(
                "BuggyWorkflow", "patch-1", id=f"bug-{uuid.uuid4().hex[:8]}", task_queue=queue,
                execution_timeout=timedelta(seconds=30),
            )  # fmt: skip
    assert "KeyError" in str(caught.value.cause) and "patch-1" in str(caught.value.cause)
