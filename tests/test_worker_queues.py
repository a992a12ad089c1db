"""Model calls and sandboxed runs on task queues of their own, each polled by its own worker."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.main import create_app
from tests.conftest import TOKEN, make_settings, serve_app
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit
from worker import build_worker, build_workers


async def test_each_kind_of_activity_runs_on_its_own_queue(
    tmp_path: Path, temporal_target: str, client: Client, tracer_provider: TracerProvider
) -> None:
    settings = make_settings(tmp_path / "home", temporal_target)
    settings = settings.model_copy(update={
        "model_task_queue": f"{settings.task_queue}-models",
        "sandbox_task_queue": f"{settings.task_queue}-sandbox",
    })  # fmt: skip
    main, models, sandbox = settings.queues
    workers = build_workers(client, settings)
    assert [w.task_queue for w in workers] == [main, models, sandbox]
    with pytest.raises(ValueError, match="splits its queues"):
        build_worker(client, settings)

    app = create_app(settings, client=client, tracer_provider=tracer_provider)
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        base = await stack.enter_async_context(serve_app(app))
        api = await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30))  # fmt: skip
        repo = make_repo(tmp_path / "calc", PY_REPO)
        run_id = await submit(
            api, repo, write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
        )
        run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run

    history = await client.get_workflow_handle(run_id).fetch_history()
    queue_of = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            queue_of[attributes.activity_type.name] = attributes.task_queue.name
    assert queue_of["ratchet.prepare"] == main
    # Grading the gates is light bookkeeping: a local activity of the workflow's own (main)
    # worker, no activity task on any queue.
    assert "ratchet.verify" not in queue_of
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert any(b"ratchet.verify" in e.SerializeToString() for e in markers)
    assert queue_of["ratchet.plan"] == models
    assert queue_of["ratchet.run_tests"] == sandbox and queue_of["ratchet.lint"] == sandbox
    # The patch step's agent loop (a child workflow): model turns and tool calls.
    child = await client.get_workflow_handle(f"{run_id}-patch-1-0").fetch_history()
    for event in child.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            queue_of[attributes.activity_type.name] = attributes.task_queue.name
    assert queue_of["ratchet.model_turn"] == models and queue_of["ratchet.tool"] == sandbox


def test_a_worker_polls_only_the_queues_it_is_given(
    tmp_path: Path, temporal_target: str, client: Client
) -> None:
    boxes = f"boxes-{uuid.uuid4()}"
    settings = make_settings(
        tmp_path / "home", temporal_target, sandbox_task_queue=boxes, worker_queues=boxes
    )
    assert [w.task_queue for w in build_workers(client, settings)] == [boxes]
    with pytest.raises(SystemExit, match="RATCHET_WORKER_QUEUES names nope"):
        build_workers(client, settings.model_copy(update={"worker_queues": "nope"}))


async def test_every_activity_a_worker_runs_is_in_the_registry(
    tmp_path: Path, client: Client
) -> None:
    from temporalio.activity import _Definition

    from contracts.activities import ACTIVITIES

    settings = make_settings(tmp_path / "home", "127.0.0.1:1")
    names = set()
    for worker in build_workers(client, settings):
        for fn in worker._config["activities"]:  # type: ignore[index]
            definition = _Definition.from_callable(fn)
            assert definition is not None and definition.name
            names.add(definition.name)
    # The patch activity is only for runs recorded before the agent loop: no worker runs it.
    assert names == set(ACTIVITIES) - {"ratchet.patch"}
