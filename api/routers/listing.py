"""GET /runs: Ratchet's runs from Temporal visibility, filtered and paged (no second database).

Filters become a visibility query over Ratchet's search attributes, so the same query works in
the Temporal UI; `query` takes a visibility query as is (e.g. `RatchetRepo = "/srv/shop" AND
RatchetStatus = "paused"`) and is combined with the filters by AND.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Authenticated, SettingsDep, TemporalClientDep
from api.models.public import RunList, RunSummary
from ratchet import search_keys as search
from ratchet.settings import Settings
from ratchet.visibility import search_attributes_ready

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Authenticated])
LIST_TIMEOUT = timedelta(seconds=5)
_DOWN = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)

KINDS = {"task": "ForwardPlanningWorkflow", "investigation": "InvestigationWorkflow",
         "drift": "DriftWorkflow"}  # fmt: skip
_KIND_OF = {v: k for k, v in KINDS.items()}
OPEN = ("running", "paused", "awaiting_approval")
_CLOSED_AS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
}
# Filter values are quoted into a query: refuse what could end the quote, and control bytes.
_SAFE_VALUE = re.compile(r"^[^\"'\\\x00-\x1f]{1,2048}$")
Status = Literal[
    "running", "paused", "awaiting_approval", "completed", "failed", "cancelled", "rejected",
    "expired",
]  # fmt: skip


def _quoted(name: str, value: str) -> str:
    if not _SAFE_VALUE.match(value):
        raise HTTPException(422, f"{name} may not hold quotes, backslashes or newlines")
    return f'"{value}"'


def build_query(
    *, tagged: bool, kind: str | None, repo: str | None, status: str | None, query: str | None
) -> str:
    types = ", ".join(f'"{t}"' for t in KINDS.values())
    clauses = [f"WorkflowType IN ({types})"]
    if kind:
        clauses.append(f'WorkflowType = "{KINDS[kind]}"')
    if repo:
        if not tagged:
            raise HTTPException(
                422, "the repo filter needs Ratchet's search attributes, which this namespace "
                "does not have (see deploy/README.md)",
            )  # fmt: skip
        clauses.append(f"{search.REPO.name} = {_quoted('repo', repo)}")
    if status:
        clauses.append(_status_clause(status, tagged))
    if query:
        clauses.append(f"({_contained(query)})")
    return " AND ".join(clauses)


def _contained(query: str) -> str:
    """The caller's query, refused unless it stays inside the parentheses it is put in (so it
    cannot widen the list beyond Ratchet's runs) and holds no control bytes."""
    depth, quote = 0, ""
    for char in query:
        if char < " ":
            raise HTTPException(422, "query may not hold control characters")
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise HTTPException(422, "query closes a parenthesis it did not open")
    if depth or quote:
        raise HTTPException(422, "query leaves a parenthesis or a quote open")
    return query


def _status_clause(status: str, tagged: bool) -> str:
    running = "ExecutionStatus = 'Running'"
    if not tagged:
        if status in OPEN:
            return running
        closed = [k.name.title().replace("_", "") for k, v in _CLOSED_AS.items() if v == status]
        closed = closed or ["Completed"]
        return "(" + " OR ".join(f"ExecutionStatus = '{c}'" for c in closed) + ")"
    if status in OPEN:
        return f"{search.STATUS.name} = '{status}' AND {running}"
    if status == "failed":  # a run that timed out or was terminated never said so itself
        return (f"({search.STATUS.name} = 'failed' OR ExecutionStatus IN "
                "('Failed', 'Terminated', 'TimedOut'))")  # fmt: skip
    return f"{search.STATUS.name} = '{status}' AND ExecutionStatus != 'Running'"


def _summary_of(execution: WorkflowExecution, settings: Settings, summary: str) -> RunSummary:
    attrs = execution.typed_search_attributes
    told = attrs.get(search.STATUS)
    if execution.status == WorkflowExecutionStatus.RUNNING:
        status = told if told in OPEN else "running"
    else:
        closed = _CLOSED_AS.get(execution.status or WorkflowExecutionStatus.FAILED, "failed")
        status = told if told and told not in OPEN and closed == "completed" else closed
    return RunSummary(
        run_id=execution.id,
        kind=attrs.get(search.KIND) or _KIND_OF.get(execution.workflow_type, "task"),
        status=status,  # type: ignore[arg-type]  # one of Status, by construction
        repo=attrs.get(search.REPO),
        policy=attrs.get(search.POLICY),
        sentry_issue=attrs.get(search.SENTRY_ISSUE),
        summary=summary,
        started_at=execution.start_time,
        ended_at=execution.close_time,
        temporal_ui_url=settings.workflow_ui_url(execution.id),
    )


def _seal(token: bytes, key: str) -> str:
    """Temporal's page token, signed: a token this API did not give is refused at once,
    instead of reaching Temporal (which retries on it for seconds before it gives up)."""
    mac = hmac.new(key.encode(), token, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + token).decode()


def _unseal(text: str, key: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode(), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    mac, token = raw[:16], raw[16:]
    expected = hmac.new(key.encode(), token, hashlib.sha256).digest()[:16]
    if not token or not hmac.compare_digest(mac, expected):
        raise HTTPException(422, "page_token is not one this API gave")
    return token


async def _static_summary(client: Client, execution: WorkflowExecution) -> str:
    try:
        described = await client.get_workflow_handle(execution.id).describe()
        return (await described.static_summary()) or ""
    except RPCError:
        return ""


@router.get("", response_model=RunList)
async def list_runs(
    client: TemporalClientDep,
    settings: SettingsDep,
    kind: Literal["task", "investigation", "drift"] | None = None,
    repo: Annotated[str | None, Query(max_length=2048)] = None,
    status: Status | None = None,
    query: Annotated[str | None, Query(max_length=4000)] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(max_length=4000)] = None,
) -> RunList:
    """Newest first. `next_page_token` is null on the last page."""
    tagged = await search_attributes_ready(client)
    visibility = build_query(tagged=tagged, kind=kind, repo=repo, status=status, query=query)
    token = _unseal(page_token, settings.token) if page_token else None
    pages = client.list_workflows(
        visibility, page_size=page_size, next_page_token=token, rpc_timeout=LIST_TIMEOUT
    )
    try:
        await pages.fetch_next_page()
    except RPCError as err:
        if err.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(422, f"Temporal refused the query: {err.message}") from None
        if token is not None and err.status not in _DOWN:
            # Ours, but from another query: Temporal cannot continue it.
            why = f"page_token does not belong to this query: {err.message}"
            raise HTTPException(422, why) from None
        raise
    executions = list(pages.current_page or [])
    summaries = await asyncio.gather(*(_static_summary(client, e) for e in executions))
    following = pages.next_page_token
    return RunList(
        runs=[_summary_of(e, settings, s) for e, s in zip(executions, summaries, strict=True)],
        next_page_token=_seal(following, settings.token) if following else None,
        query=visibility,
    )
