"""GET /runs: filters become a visibility query that stays inside Ratchet's runs, and pages are
followed with tokens only this API gives (real Temporal visibility)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import HTTPException

from api.routers.listing import build_query
from tests.api.conftest import Gate

RATCHET = 'WorkflowType IN ("ForwardPlanningWorkflow", "InvestigationWorkflow", "DriftWorkflow")'


def query(*, tagged: bool = True, **filters: str) -> str:
    every: dict[str, str | None] = {"kind": None, "repo": None, "status": None, "query": None}
    return build_query(tagged=tagged, **(every | filters))


def refused(*, tagged: bool = True, **filters: str) -> str:
    with pytest.raises(HTTPException) as err:
        query(tagged=tagged, **filters)
    assert err.value.status_code == 422
    return str(err.value.detail)


def test_filters_are_joined_by_and_inside_ratchet_s_runs() -> None:
    assert query() == RATCHET
    assert query(kind="drift", repo="/srv/shop", status="paused", query="RatchetPolicy = 'x'") == (
        f'{RATCHET} AND WorkflowType = "DriftWorkflow" AND RatchetRepo = "/srv/shop" AND '
        "RatchetStatus = 'paused' AND ExecutionStatus = 'Running' AND (RatchetPolicy = 'x')"
    )
    assert query(status="failed").endswith(
        "(RatchetStatus = 'failed' OR ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut'))"
    )
    assert query(status="rejected").endswith(
        "RatchetStatus = 'rejected' AND ExecutionStatus != 'Running'"
    )


def test_without_search_attributes_status_falls_back_on_temporal_s_own() -> None:
    assert query(tagged=False, status="awaiting_approval").endswith(
        "AND ExecutionStatus = 'Running'"
    )
    assert query(tagged=False, status="cancelled").endswith("AND (ExecutionStatus = 'Canceled')")
    assert query(tagged=False, status="expired").endswith("AND (ExecutionStatus = 'Completed')")
    assert "needs Ratchet's search attributes" in refused(tagged=False, repo="/srv/shop")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"repo": '/srv/shop" OR WorkflowType != "x'}, "repo may not hold quotes"),
        ({"repo": "/srv/sh\\op"}, "repo may not hold quotes, backslashes or newlines"),
        ({"query": "x = 1) OR (y = 2"}, "query closes a parenthesis it did not open"),
        ({"query": "(x = 1"}, "query leaves a parenthesis or a quote open"),
        ({"query": "x = 'a"}, "query leaves a parenthesis or a quote open"),
        ({"query": "x = 1\nOR y = 2"}, "query may not hold control characters"),
    ],
)
def test_what_could_escape_the_query_is_refused(filters: dict[str, str], message: str) -> None:
    assert message in refused(**filters)


def test_parentheses_inside_quotes_are_text() -> None:
    assert query(query="RatchetRepo = ')' AND x = \"(\"").endswith(
        "AND (RatchetRepo = ')' AND x = \"(\")"
    )


async def listed(gate: Gate, **params: object) -> dict[str, object]:
    response = await gate.http.get("/runs", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, object] = response.json()
    return page


async def test_runs_are_paged_newest_first_with_sealed_tokens(gate: Gate) -> None:
    runs = [await gate.idle_run(ended=True) for _ in range(3)]
    only = f"TaskQueue = '{gate.settings.task_queue}-idle'"
    deadline = time.monotonic() + 10
    while (await gate.client.count_workflows(only)).count < 3:  # visibility catches up
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    first = await listed(gate, query=only, page_size=2, status="failed")
    assert first["query"] == query(status="failed", query=only)
    token = first["next_page_token"]
    assert isinstance(token, str)
    second = await listed(gate, query=only, page_size=2, status="failed", page_token=token)
    assert second["next_page_token"] is None
    pages = [*first["runs"], *second["runs"]]  # type: ignore[misc]
    assert [r["run_id"] for r in pages] == [r.id for r in reversed(runs)]
    assert {(r["kind"], r["status"], r["repo"], r["summary"]) for r in pages} == {
        ("task", "failed", None, "")
    }
    assert (await listed(gate, query=only, status="completed"))["runs"] == []
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await gate.http.get("/runs", params={"query": only, "page_token": forged})
    assert (response.status_code, response.json()["detail"]) == (
        422, "page_token is not one this API gave"
    )  # fmt: skip


async def test_a_query_temporal_cannot_read_is_422_with_its_reason(gate: Gate) -> None:
    response = await gate.http.get("/runs", params={"query": "NoSuchAttribute = 'x'"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Temporal refused the query: ")
