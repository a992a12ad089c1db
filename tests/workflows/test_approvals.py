"""Approvals: a run waits on a Temporal update (with a validator) before its plan runs or its
patch is delivered; approve, reject, expiry, and the validator's refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.worker import Worker

from contracts.runs import ApprovalDecision
from gym.git import git
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit

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


async def test_unanswered_the_wait_expires_and_the_work_is_kept(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script, require_approval=True, approval_timeout_s=2)
    run = await wait_for_end(api, run_id)
    if run["status"] == "awaiting_approval":
        run = await wait_for_end(api, run_id, timeout_s=30, until_not="awaiting_approval")
    assert run["status"] == "expired", run
    assert "no decision on the delivery within 2s" in run["error"]["message"]
    assert run["approvals"][0]["decision"] == "expired"
    assert run["result"]["branch"] is None
    assert (await api.get(f"/runs/{run_id}/patch")).status_code == 200
    assert git("branch", "--list", "ratchet/*", cwd=repo) == ""


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
