"""The gate on a Temporal namespace of its own, for the API tests that start runs: what they start
is never listed by other tests (nor recorded by --record-histories, which reads the default one).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client, WorkflowHandle

from api.main import create_app
from contracts.runs import FORWARD_WORKFLOW
from ratchet.settings import Settings
from tests.conftest import _free_namespaces, serve_app
from tests.utils.settings import TOKEN, make_settings


@dataclass
class Gate:
    http: httpx.AsyncClient
    """With the API token."""
    client: Client
    settings: Settings

    async def idle_run(self, *, ended: bool = False) -> WorkflowHandle[object, object]:
        """A run that no worker picks up (its own task queue has none); `ended`: terminated."""
        run_id = f"task-{uuid.uuid4().hex[:12]}"
        handle: WorkflowHandle[object, object] = await self.client.start_workflow(
            FORWARD_WORKFLOW, id=run_id, task_queue=f"{self.settings.task_queue}-idle"
        )
        if ended:
            await handle.terminate("ended by the test")
        return handle

    async def started(self, expected: int = 0) -> int:
        """Runs started on this gate's task queue, once visibility shows `expected` of them (or
        after five seconds)."""
        query = f"TaskQueue = '{self.settings.task_queue}'"
        deadline = time.monotonic() + 5
        while (count := (await self.client.count_workflows(query)).count) < expected:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        return count


@pytest_asyncio.fixture(scope="package")
async def own_client(temporal_target: str) -> Client:
    # One namespace for the package, taken from conftest's pool (as tests/faults does).
    return await Client.connect(temporal_target, namespace=_free_namespaces.pop(0))


@pytest_asyncio.fixture
async def gate(
    tmp_path: Path,
    temporal_target: str,
    own_client: Client,
    tracer_provider: TracerProvider,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Gate]:
    """The app on the package's namespace; settings overrides by indirect parametrization."""
    overrides = getattr(request, "param", {})
    settings = make_settings(
        tmp_path / "home", temporal_target, namespace=own_client.namespace, **overrides
    )
    app = create_app(settings, client=own_client, tracer_provider=tracer_provider)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http,
    ):
        yield Gate(http, own_client, settings)
    queues = f"('{settings.task_queue}', '{settings.task_queue}-idle')"
    async for execution in own_client.list_workflows(
        f"TaskQueue IN {queues} AND ExecutionStatus = 'Running'"
    ):
        await own_client.get_workflow_handle(execution.id).terminate("the test is over")
