"""Spec drift, checked by the scripted policy's claims (a test double), once and on a schedule."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from temporalio.worker import Worker

from tests.utils.history import BILLING, BILLING_BROKEN, planted
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_patterns import roles_script

README = (
    "# billing\n\nAn invoice with no lines totals 0.\n\nTotals live in app/billing/totals.py.\n"
)
CLAIMS = json.dumps({"claims": [
    {"id": "empty_total", "text": "An invoice with no lines totals 0.", "source": "README.md",
     "check": {"kind": "test", "content":
               "from app.billing.totals import compute_total\n\n\n"
               "def test_empty():\n    assert compute_total([]) == 0\n"}},
    {"id": "totals_module", "text": "Totals live in app/billing/totals.py.", "source": "README.md",
     "check": {"kind": "inspection", "path": "app/billing/totals.py",
               "pattern": "def compute_total", "expect": "present"}},
]})  # fmt: skip


def billing(tmp_path: Path) -> tuple[Path, list[str], Path]:
    repo = tmp_path / "billing"
    shas = planted(repo, {**BILLING, "README.md": README}, commits=12, bad_at=7,
                   breaking=BILLING_BROKEN)  # fmt: skip
    script = roles_script(tmp_path / "s.toml", ["unused\n"], {"claims": [CLAIMS, CLAIMS]})
    return repo, shas, script


async def test_a_claim_the_code_contradicts_is_in_the_drift_report(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo, _, script = billing(tmp_path)
    response = await api.post("/drift", json={
        "repo": str(repo), "policy": "scripted", "policy_script": str(script),
        "investigate": False,
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    assert run["kind"] == "drift"
    (gate,) = run["result"]["gates"]
    assert not gate["passed"] and gate["detail"] == "1 hold, 1 drifted, 0 unchecked"
    report = (await api.get(run["result"]["report_url"])).text
    assert "| empty_total | drift | README.md | An invoice with no lines totals 0. |" in report
    assert "| totals_module | holds | README.md |" in report
    assert "ZeroDivisionError" in report  # the evidence: the claim's test output
    assert run["result"]["investigation_run_id"] is None


async def test_a_scheduled_drift_check_starts_an_investigation(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo, shas, script = billing(tmp_path)
    created = await api.post("/schedules", json={
        "repo": str(repo), "policy": "scripted", "policy_script": str(script), "every_s": 86400,
    })  # fmt: skip
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    assert (await api.post(f"/schedules/{schedule_id}/trigger")).status_code == 202
    drift_run = None
    for _ in range(100):
        recent = (await api.get(f"/schedules/{schedule_id}")).json()["recent_runs"]
        if recent:
            drift_run = recent[0]
            break
        await asyncio.sleep(0.2)
    assert drift_run, "the schedule never started a drift check"
    run = await wait_for_end(api, drift_run)
    investigation = run["result"]["investigation_run_id"]
    assert investigation
    found = await wait_for_end(api, investigation, timeout_s=180)
    assert found["status"] == "completed", found
    assert found["result"]["culprit"]["sha"] == shas[7]
    assert (await api.delete(f"/schedules/{schedule_id}")).status_code == 204
    assert (await api.get(f"/schedules/{schedule_id}")).status_code == 404


async def test_a_repository_without_spec_text_is_reported_without_asking_a_model(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "bare"
    planted(repo, BILLING, commits=2, bad_at=99, breaking={})  # no README, no specs/
    script = roles_script(tmp_path / "s.toml", ["unused\n"], {"claims": [CLAIMS]})
    response = await api.post("/drift", json={
        "repo": str(repo), "policy": "scripted", "policy_script": str(script),
    })  # fmt: skip
    run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    assert [s["name"] for s in run["steps"]] == ["read specs"]
    (gate,) = run["result"]["gates"]
    assert gate["passed"] and gate["detail"].startswith("nothing to check")
    assert run["usage"]["turns"] == 0
