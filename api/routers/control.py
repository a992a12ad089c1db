"""Steering a run: raise its budget (a paused run resumes), cancel it (a draft is delivered),
approve or reject what it waits on.

Both are Temporal updates with validators: a refused one writes nothing to the run's history.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException
from opentelemetry import trace
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Authenticated, TemporalClientDep, check_run_id
from api.models.inputs import ApproveIn, BudgetIn, CancelIn, RejectIn
from api.models.public import ControlPublic, UsagePublic
from contracts.control import ApprovalDecision, BudgetUpdate, CancelRequest, ControlAnswer
from ratchet.telemetry import RUN_ID_ATTRIBUTE

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Authenticated])


async def _update(client: TemporalClientDep, run_id: str, name: str, arg: object) -> ControlPublic:
    check_run_id(run_id)
    handle = client.get_workflow_handle(run_id)
    try:
        answer = await handle.execute_update(name, arg, result_type=ControlAnswer)
    except WorkflowUpdateFailedError as err:
        raise HTTPException(409, str(err.cause or err)) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            try:
                await handle.describe()
            except RPCError:
                raise HTTPException(404, f"no run {run_id!r}") from None
            raise HTTPException(409, f"run {run_id} has ended: nothing to change") from None
        if err.status == RPCStatusCode.FAILED_PRECONDITION:
            raise HTTPException(409, f"run {run_id} has ended: {err.message}") from None
        raise
    return ControlPublic(
        run_id=run_id,
        phase=answer.phase,
        budget=BudgetIn(**asdict(answer.budget)),
        usage=UsagePublic.of(answer.usage),
        message=answer.message,
    )


@router.post("/{run_id}/budget", response_model=ControlPublic)
async def raise_budget(run_id: str, body: BudgetIn, client: TemporalClientDep) -> ControlPublic:
    """Set new limits; a run paused on a spent budget continues when the new one allows it."""
    if not any(v is not None for v in body.model_dump().values()):
        raise HTTPException(
            422, "give at least one of max_cost_usd, max_tokens, max_turns, max_wall_s"
        )
    return await _update(client, run_id, "budget", BudgetUpdate(**body.model_dump()))


@router.post("/{run_id}/cancel", status_code=202, response_model=ControlPublic)
async def cancel(run_id: str, body: CancelIn | None, client: TemporalClientDep) -> ControlPublic:
    """Stop the run after its current step and deliver what is there as a draft."""
    return await _update(client, run_id, "cancel", CancelRequest(body.reason if body else ""))


@router.post("/{run_id}/approve", response_model=ControlPublic)
async def approve(run_id: str, body: ApproveIn, client: TemporalClientDep) -> ControlPublic:
    """Approve what the run waits on (its plan, or its verified patch before delivery)."""
    return await _decide(client, run_id, "approve", body.by, comment=body.comment)


@router.post("/{run_id}/reject", response_model=ControlPublic)
async def reject(run_id: str, body: RejectIn, client: TemporalClientDep) -> ControlPublic:
    """Refuse it: the run ends "rejected", nothing is delivered, its work stays readable."""
    return await _decide(client, run_id, "reject", body.by, reason=body.reason)


async def _decide(
    client: TemporalClientDep, run_id: str, update: str, by: str | None, **text: str
) -> ControlPublic:
    who = by or "api"  # one token, many people: who decided is what the caller says
    trace.get_current_span().set_attributes({RUN_ID_ATTRIBUTE: run_id, "ratchet.approval.by": who})
    return await _update(client, run_id, update, ApprovalDecision(by=who, **text))
