"""Reading a run: one that is not there, and one that ended with no worker to answer its query
(what Temporal alone can tell is still answered)."""

from __future__ import annotations

from api.models.public import UsagePublic
from tests.api.conftest import Gate

UNKNOWN = "task-000000000000"


async def test_a_run_that_ended_unread_is_described_from_temporal_alone(gate: Gate) -> None:
    run = await gate.idle_run(ended=True)
    response = await gate.http.get(f"/runs/{run.id}")
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["run_id"], shown["workflow_id"], shown["kind"]) == (run.id, run.id, "task")
    assert (shown["status"], shown["steps"], shown["result"]) == ("failed", [], None)
    assert shown["error"]["type"] == "WorkflowFailed"
    assert shown["error"]["message"].startswith("the workflow ended as ")
    assert shown["usage"] == UsagePublic().model_dump()
    limits = ("max_cost_usd", "max_tokens", "max_turns", "max_wall_s")
    assert shown["budget"] == dict.fromkeys(limits)  # no limits: all null
    assert shown["temporal_ui_url"] == gate.settings.workflow_ui_url(run.id)


async def test_what_a_run_has_not_recorded_is_404_or_409(gate: Gate) -> None:
    run = await gate.idle_run(ended=True)
    for what in ("patch", "plan", "report"):
        response = await gate.http.get(f"/runs/{run.id}/{what}")
        assert (response.status_code, response.json()["detail"]) == (
            404, f"run {run.id} has no {what} (yet)"
        )  # fmt: skip
    transcript = await gate.http.get(f"/runs/{run.id}/transcript")
    assert (transcript.status_code, transcript.json()["detail"]) == (
        409, f"run {run.id} cannot be read now (no worker answers)"
    )  # fmt: skip
    fork = await gate.http.post(f"/runs/{run.id}/fork", json={"from_step": "base"})
    assert (fork.status_code, fork.json()["detail"]) == (
        409, f"run {run.id} cannot be read right now (is a worker running?)"
    )  # fmt: skip
    assert await gate.started() == 0


async def test_a_run_that_is_not_there_is_404_everywhere(gate: Gate) -> None:
    for method, path in (("GET", ""), ("GET", "/patch"), ("GET", "/transcript"),
                         ("GET", "/plan"), ("GET", "/report"), ("POST", "/fork")):  # fmt: skip
        body = {"from_step": "base"} if method == "POST" else None
        response = await gate.http.request(method, f"/runs/{UNKNOWN}{path}", json=body)
        assert (response.status_code, response.json()["detail"]) == (404, f"no run {UNKNOWN!r}")
