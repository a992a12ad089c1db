"""Steering a run (budget, cancel, approve, reject): what is refused before Temporal is asked, a
run that is not there, and a run that has ended (real Temporal, no worker needed)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ratchet.telemetry import RUN_ID_ATTRIBUTE
from tests.api.conftest import Gate

UNKNOWN = "task-000000000000"
STEERING = [
    ("budget", {"max_turns": 50}),
    ("cancel", {"reason": "enough"}),
    ("approve", {"by": "alice"}),
    ("reject", {"reason": "wrong approach"}),
]


async def test_a_budget_change_must_set_a_limit(gate: Gate) -> None:
    empty = await gate.http.post(f"/runs/{UNKNOWN}/budget", json={})
    assert (empty.status_code, empty.json()["detail"]) == (
        422, "give at least one of max_cost_usd, max_tokens, max_turns, max_wall_s"
    )  # fmt: skip
    nulls = await gate.http.post(f"/runs/{UNKNOWN}/budget", json={"max_turns": None})
    assert nulls.status_code == 422
    negative = await gate.http.post(f"/runs/{UNKNOWN}/budget", json={"max_cost_usd": -1})
    assert negative.json()["detail"] == "max_cost_usd: Input should be greater than 0"


async def test_a_rejection_needs_a_reason(gate: Gate) -> None:
    response = await gate.http.post(f"/runs/{UNKNOWN}/reject", json={"by": "alice"})
    assert (response.status_code, response.json()["detail"]) == (422, "reason: Field required")


@pytest.mark.parametrize(("action", "body"), STEERING, ids=[a for a, _ in STEERING])
async def test_steering_a_run_that_is_not_there_is_404(
    gate: Gate, action: str, body: dict[str, object]
) -> None:
    for run_id in (UNKNOWN, "-rf"):
        response = await gate.http.post(f"/runs/{run_id}/{action}", json=body)
        assert (response.status_code, response.json()["detail"]) == (404, f"no run {run_id!r}")


@pytest.mark.parametrize(("action", "body"), STEERING, ids=[a for a, _ in STEERING])
async def test_steering_a_run_that_has_ended_is_409(
    gate: Gate, action: str, body: dict[str, object]
) -> None:
    run = await gate.idle_run(ended=True)
    response = await gate.http.post(f"/runs/{run.id}/{action}", json=body)
    assert (response.status_code, response.json()["detail"]) == (
        409, f"run {run.id} has ended: nothing to change"
    )  # fmt: skip


async def test_who_decides_is_what_the_caller_says_or_api(
    gate: Gate, span_exporter: InMemorySpanExporter
) -> None:
    run = await gate.idle_run(ended=True)
    before = len(span_exporter.get_finished_spans())
    await gate.http.post(f"/runs/{run.id}/approve", json={"by": "alice"})
    await gate.http.post(f"/runs/{run.id}/reject", json={"reason": "no"})
    deciders = [
        s.attributes["ratchet.approval.by"] for s in span_exporter.get_finished_spans()[before:]
        if s.attributes and s.attributes.get(RUN_ID_ATTRIBUTE) == run.id
        and "ratchet.approval.by" in s.attributes
    ]  # fmt: skip
    assert deciders == ["alice", "api"]
