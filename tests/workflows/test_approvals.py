"""Approvals: a run waits on a Temporal update (with a validator) before its plan runs or its
patch is delivered; approve, reject, expiry, and the validator's refusals.

The waits with a timer run on Temporal's time-skipping test server (the `time_skipping_env`
fixture), so a wait of an hour or a week is tested in moments; the rest run on the dev server,
whose history the validator test reads."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from contracts.control import ApprovalDecision
from gym.git import git
from tests.conftest import serve_app
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.utils.settings import TOKEN, make_settings
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit
from worker import build_worker

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}


async def _update_events(client: Client, run_id: str) -> int:
    history = await client.get_workflow_handle(run_id).fetch_history()
    return sum(1 for e in history.events if e.event_type in UPDATE_EVENTS)


async def _waiting(api: httpx.AsyncClient, run_id: str, stage: str) -> dict[str, object]:
    run = await wait_for_end(api, run_id)
    assert run["status"] == "awaiting_approval", run
    assert run["awaiting"] == stage
    return run


async def test_approved_twice_the_plan_then_the_patch_is_delivered_and_who_is_recorded(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, client: Client
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script, approve_plan=True, require_approval=True)

    run = await _waiting(api, run_id, "plan")
    assert [s["name"] for s in run["steps"]][-1] == "plan"  # nothing patched before approval
    assert (await api.get(f"/runs/{run_id}/plan")).status_code == 200
    listed = await api.get("/runs", params={"status": "awaiting_approval", "repo": str(repo)})
    assert [r["run_id"] for r in listed.json()["runs"]] == [run_id]

    answer = await api.post(f"/runs/{run_id}/approve", json={"by": "ada", "comment": "go"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "plan approved"

    run = await _waiting(api, run_id, "delivery")
    assert git("branch", "--list", "ratchet/*", cwd=repo) == ""  # not delivered yet
    patch = await api.get(f"/runs/{run_id}/patch")
    assert patch.status_code == 200 and "a * b" in patch.text  # the reviewer sees the patch
    assert all(g["passed"] for g in run["result"]["gates"])

    answer = await api.post(f"/runs/{run_id}/approve", json={"by": "grace"})
    assert answer.status_code == 200, answer.text
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run
    assert run["result"]["branch"] == f"ratchet/{run_id}"
    assert [(a["stage"], a["decision"], a["by"], a["comment"]) for a in run["approvals"]] == [
        ("plan", "approved", "ada", "go"), ("delivery", "approved", "grace", ""),
    ]  # fmt: skip


async def test_rejected_the_run_ends_with_the_reason_and_nothing_is_delivered(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script, require_approval=True)
    await _waiting(api, run_id, "delivery")

    missing = await api.post(f"/runs/{run_id}/reject", json={"by": "ada"})
    assert missing.status_code == 422 and "reason" in missing.text
    blank = await api.post(f"/runs/{run_id}/reject", json={"reason": "   "})
    assert blank.status_code == 422

    answer = await api.post(f"/runs/{run_id}/reject", json={"by": "ada", "reason": "wrong API"})
    assert answer.status_code == 200, answer.text
    run = await wait_for_end(api, run_id)
    assert run["status"] == "rejected", run
    assert run["error"]["message"] == "the delivery was rejected by ada: wrong API"
    assert run["approvals"][0]["decision"] == "rejected"
    assert run["approvals"][0]["comment"] == "wrong API"
    assert git("branch", "--list", "ratchet/*", cwd=repo) == ""
    assert (await api.get(f"/runs/{run_id}/patch")).status_code == 200  # the work is kept
    again = await api.post(f"/runs/{run_id}/approve", json={})
    assert again.status_code == 409


HOUR = 3600
WEEK = 7 * 24 * HOUR  # what a task waits for when it names no approval_timeout_s


@pytest_asyncio.fixture
async def skipping_api(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker as `api` and `worker` are (build_worker registers the same workflows
    and activities), on the time-skipping test server: a timer of hours passes in moments while
    `time_skipping_env.sleep` is awaited, and time stands still otherwise (while the steps run
    and while the test polls GET /runs)."""
    client = time_skipping_env.client
    settings = make_settings(tmp_path / "home", client.service_client.config.target_host)
    app = create_app(settings, client=client, tracer_provider=tracer_provider)
    async with (
        build_worker(client, settings),
        serve_app(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield http


async def _skip(env: WorkflowEnvironment, seconds: float) -> float:
    """Let `seconds` of Temporal's time pass; returns the real seconds it took."""
    started = time.monotonic()
    before = await env.get_current_time()
    await env.sleep(timedelta(seconds=seconds))
    assert await env.get_current_time() - before >= timedelta(seconds=seconds)
    return time.monotonic() - started


def _waited(waiting: dict[str, Any], decided: dict[str, Any]) -> timedelta:
    """Workflow time from the last step before the wait to its decision (or its expiry)."""
    last_step = datetime.fromisoformat(waiting["steps"][-1]["ended_at"])
    return datetime.fromisoformat(decided["approvals"][-1]["at"]) - last_step


async def test_unanswered_the_wait_expires_and_the_work_is_kept(
    skipping_api: httpx.AsyncClient, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    api = skipping_api
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script, require_approval=True, approval_timeout_s=HOUR)
    waiting = await wait_for_end(api, run_id)
    assert (waiting["status"], waiting["awaiting"]) == ("awaiting_approval", "delivery"), waiting

    real_s = await _skip(time_skipping_env, HOUR + 1)
    run = await wait_for_end(api, run_id, timeout_s=30, until_not="awaiting_approval")
    assert run["status"] == "expired", run
    assert run["error"]["message"] == "no decision on the delivery within 3600s: the work is kept"
    assert [(a["stage"], a["decision"]) for a in run["approvals"]] == [("delivery", "expired")]
    assert timedelta(hours=1) <= _waited(waiting, run) < timedelta(hours=1, minutes=1)
    assert real_s < 10  # an hour of the run's time, in moments of ours
    assert run["result"]["branch"] is None
    assert (await api.get(f"/runs/{run_id}/patch")).status_code == 200
    assert git("branch", "--list", "ratchet/*", cwd=repo) == ""


async def test_an_unanswered_plan_expires_after_a_week_with_the_plan_kept(
    skipping_api: httpx.AsyncClient, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    api = skipping_api
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL], plan="1. add mul")
    run_id = await submit(api, repo, script, approve_plan=True)  # the default timeout
    waiting = await wait_for_end(api, run_id)
    assert (waiting["status"], waiting["awaiting"]) == ("awaiting_approval", "plan"), waiting

    # A day short of the week, it still waits.
    await _skip(time_skipping_env, WEEK - 24 * HOUR)
    run = await wait_for_end(api, run_id)
    assert run["status"] == "awaiting_approval" and run["approvals"] == []

    real_s = await _skip(time_skipping_env, 24 * HOUR + 1)
    run = await wait_for_end(api, run_id, timeout_s=30, until_not="awaiting_approval")
    assert run["status"] == "expired", run
    assert run["error"]["message"] == f"no decision on the plan within {WEEK}s: the work is kept"
    assert timedelta(days=7) <= _waited(waiting, run) < timedelta(days=7, minutes=1)
    assert real_s < 10
    assert [s["name"] for s in run["steps"]][-1] == "plan"  # nothing was patched
    plan = await api.get(f"/runs/{run_id}/plan")
    assert plan.status_code == 200 and plan.text == "1. add mul"


async def test_an_approval_a_minute_before_the_hour_still_delivers(
    skipping_api: httpx.AsyncClient, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    api = skipping_api
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script, require_approval=True, approval_timeout_s=HOUR)
    waiting = await wait_for_end(api, run_id)
    assert waiting["status"] == "awaiting_approval", waiting

    await _skip(time_skipping_env, HOUR - 60)
    # The test server takes updates: the decision reaches the run as on the dev server.
    answer = await api.post(f"/runs/{run_id}/approve", json={"by": "ada"})
    assert answer.status_code == 200, answer.text
    run = await wait_for_end(api, run_id, timeout_s=60)
    assert run["status"] == "completed", run
    assert run["result"]["branch"] == f"ratchet/{run_id}"
    assert [(a["decision"], a["by"]) for a in run["approvals"]] == [("approved", "ada")]
    assert timedelta(minutes=59) <= _waited(waiting, run) < timedelta(hours=1)


async def test_the_validator_refuses_without_writing_history(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, client: Client
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    # A run that does not wait for approval: approving it is refused.
    plain = await submit(api, repo, script, approve_plan=True)
    await _waiting(api, plain, "plan")
    before = await _update_events(client, plain)

    handle = client.get_workflow_handle(plain)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("reject", ApprovalDecision(by="ada", reason=" "))
    assert "a rejection needs a reason" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("approve", ApprovalDecision(by="x" * 2001))
    assert "over 2000 characters" in str(refused.value.cause)
    assert await _update_events(client, plain) == before  # refused: nothing written

    ok = await api.post(f"/runs/{plain}/approve", json={})
    assert ok.status_code == 200
    run = await wait_for_end(api, plain)
    assert run["status"] == "completed" and run["approvals"][0]["by"] == "api"
    late = await api.post(f"/runs/{plain}/approve", json={})
    assert late.status_code == 409 and "has ended" in late.text

    unknown = await api.post("/runs/task-000000000000/approve", json={})
    assert unknown.status_code == 404
    bad_id = await api.post("/runs/..%2Fetc/approve", json={})
    assert bad_id.status_code in (404, 422)
