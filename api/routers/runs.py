"""GET /runs/{run_id} and its patch, read from Temporal (describe + query): no second database."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from agents import transcript
from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep, check_run_id
from api.models.inputs import BudgetIn, ForkCreate
from api.models.public import (
    ApprovalPublic,
    CulpritPublic,
    EnvironmentPublic,
    ErrorPublic,
    GatePublic,
    RunPublic,
    RunResultPublic,
    StepPublic,
    TaskAccepted,
    UsagePublic,
)
from api.starting import choose_policy, new_run_id, run_queues, start_forward
from contracts.drift import DRIFT_WORKFLOW
from contracts.investigation import INVESTIGATION_WORKFLOW
from contracts.results import (
    DriftResult,
    DriftState,
    InvestigationResult,
    InvestigationState,
    TaskResult,
    TaskState,
)
from contracts.runs import FORWARD_WORKFLOW, RunResult, RunState
from ratchet.artifacts import ArtifactNotFound
from ratchet.telemetry import current_trace_id

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Authenticated])

_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: "running",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: "cancelled",
}
QUERY_TIMEOUT = timedelta(seconds=10)
STATES: dict[str, type[RunState]] = {
    FORWARD_WORKFLOW: TaskState, INVESTIGATION_WORKFLOW: InvestigationState,
    DRIFT_WORKFLOW: DriftState,
}  # fmt: skip
# Phases a run reports itself that Temporal's own status cannot tell.
PHASES_SHOWN = ("paused", "awaiting_approval", "cancelled", "rejected", "expired")


async def _load(
    client: TemporalClientDep, run_id: str
) -> tuple[WorkflowHandle[object, object], WorkflowExecutionDescription, RunState | None]:
    check_run_id(run_id)
    handle = client.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no run {run_id!r}") from None
        raise
    try:
        # Each kind's state decodes with its own result type (its fields, not the others').
        kind = STATES.get(description.workflow_type or "", RunState)
        state = await handle.query("state", result_type=kind, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TimeoutError):
        # No worker to answer, or a busy one: the description alone still says how it stands.
        state = None
    return handle, description, state


def _result(run_id: str, r: RunResult) -> RunResultPublic:
    """A run's result as GET /runs/{id} shows it: its kind's fields, the others empty."""
    kind_fields: dict[str, object] = {}
    if isinstance(r, TaskResult):
        kind_fields = {
            "refactor_kept": r.refactor_kept, "isolation": r.isolation, "draft": r.draft,
            "plan_url": f"/runs/{run_id}/plan" if r.plan_ref else None,
            "memory_used": r.memory_used,
        }  # fmt: skip
    elif isinstance(r, InvestigationResult):
        culprit = CulpritPublic(**asdict(r.culprit)) if r.culprit else None
        kind_fields = {"culprit": culprit, "rounds": r.rounds, "probes": r.probes}
    elif isinstance(r, DriftResult):
        kind_fields = {"investigation_run_id": r.investigation_run_id}
    return RunResultPublic(
        gates=[GatePublic(name=g.name, passed=g.passed, detail=g.detail) for g in r.gates],
        patch_url=f"/runs/{run_id}/patch" if r.patch_ref else None,
        branch=r.branch, pull_request_url=r.pull_request_url, commit=r.commit,
        report_url=f"/runs/{run_id}/report" if r.report_ref else None,
        environment=EnvironmentPublic(**asdict(r.environment)) if r.environment else None,
        **kind_fields,  # type: ignore[arg-type]
    )  # fmt: skip


@router.get("/{run_id}", response_model=RunPublic)
async def get_run(run_id: str, client: TemporalClientDep, settings: SettingsDep) -> RunPublic:
    _, description, state = await _load(client, run_id)
    status = _STATUS.get(description.raw_description.workflow_execution_info.status, "failed")
    if state and state.phase in PHASES_SHOWN and status in ("running", "completed"):
        status = state.phase
    steps = [
        StepPublic(
            name=s.name, status=s.status, attempts=s.attempts, started_at=s.started_at,
            ended_at=s.ended_at, round=s.round, detail=s.detail,
        )
        for s in (state.steps if state else [])
    ]  # fmt: skip
    _merge_pending(steps, description)
    result = _result(run_id, state.result) if state and state.result else None
    error = None
    if state and state.error:
        error = ErrorPublic(type=state.error["type"], message=state.error["message"])
    elif status == "failed":
        error = ErrorPublic(
            type="WorkflowFailed", message=f"the workflow ended as {description.status}"
        )
    return RunPublic(
        run_id=run_id,
        workflow_id=description.id,
        kind=state.kind if state else "task",
        status=status,  # type: ignore[arg-type]
        steps=steps,
        result=result,
        trace_id=state.trace_id if state else "",
        temporal_ui_url=settings.workflow_ui_url(description.id),
        policy=state.policy_label if state else "",
        error=error,
        snapshots=state.snapshots if state else {},
        forked_from=state.task.forked_from if state and state.task else None,
        usage=UsagePublic.of(state.usage, state.child_usage) if state else UsagePublic(),
        budget=BudgetIn(**asdict(state.budget)) if state else BudgetIn(),
        pause_reason=state.pause_reason if state else "",
        awaiting=state.awaiting if state else "",
        approvals=[ApprovalPublic(**asdict(a)) for a in state.approvals] if state else [],
    )


def _merge_pending(steps: list[StepPublic], description: WorkflowExecutionDescription) -> None:
    """A running step's attempts and last failure are only known to Temporal: copy them in."""
    pending = description.raw_description.pending_activities
    running = [s for s in steps if s.status == "running"]
    if not pending or not running:
        return
    activity = max(pending, key=lambda p: p.attempt)
    step = running[-1]
    step.attempts = max(step.attempts, activity.attempt)
    if activity.attempt > 1 and activity.last_failure.message:
        step.detail = f"retrying after: {activity.last_failure.message[:300]}"


async def _artifact(
    client: TemporalClientDep, store: StoreDep, run_id: str, what: str, media_type: str
) -> Response:
    _, _, state = await _load(client, run_id)
    ref = getattr(state.result, f"{what}_ref", None) if state and state.result else None
    if not ref:
        raise HTTPException(404, f"run {run_id} has no {what} (yet)")
    try:
        data = store.get(ref)
    except ArtifactNotFound:
        raise HTTPException(404, f"the {what} of run {run_id} is missing from the store") from None
    return Response(content=data, media_type=media_type)


@router.get("/{run_id}/patch", response_class=Response)
async def get_patch(run_id: str, client: TemporalClientDep, store: StoreDep) -> Response:
    return await _artifact(client, store, run_id, "patch", "text/x-diff")


@router.get("/{run_id}/transcript")
async def get_transcript(
    run_id: str, client: TemporalClientDep, store: StoreDep,
    result_chars: Annotated[int, Query(ge=0, le=1_000_000)] = 2000,
) -> dict[str, object]:  # fmt: skip
    """The agent's conversations, turn by turn: each turn's text, tool calls and results (each
    result's head and tail, `result_chars` in all; 0 for whole results)."""
    _, _, state = await _load(client, run_id)
    if state is None:
        raise HTTPException(409, f"run {run_id} cannot be read now (no worker answers)")
    conversations = []
    for step, ref in state.transcripts.items():
        try:
            messages = transcript.loads(store.get_text(ref))
        except (ArtifactNotFound, ValueError):
            raise HTTPException(404, f"the {step} transcript of run {run_id} is missing") from None
        conversations.append({"step": step, "turns": transcript.turns(messages, result_chars)})
    return {"run_id": run_id, "policy": state.policy_label, "conversations": conversations}


@router.get("/{run_id}/plan", response_class=Response)
async def get_plan(run_id: str, client: TemporalClientDep, store: StoreDep) -> Response:
    """The plan the run worked from (with many perspectives: who contributed what)."""
    return await _artifact(client, store, run_id, "plan", "text/markdown")


@router.get("/{run_id}/report", response_class=Response)
async def get_report(run_id: str, client: TemporalClientDep, store: StoreDep) -> Response:
    """An investigation's root-cause report (markdown)."""
    return await _artifact(client, store, run_id, "report", "text/markdown")


@router.post("/{run_id}/fork", status_code=202, response_model=TaskAccepted)
async def fork_run(
    run_id: str,
    body: ForkCreate,
    client: TemporalClientDep,
    settings: SettingsDep,
    store: StoreDep,
) -> TaskAccepted:
    """Start a new run from a snapshot another run recorded (e.g. to retry with another policy)."""
    _, _, state = await _load(client, run_id)
    if state is None or state.task is None:
        raise HTTPException(409, f"run {run_id} cannot be read right now (is a worker running?)")
    snapshot = state.snapshots.get(body.from_step)
    if snapshot is None:
        known = ", ".join(state.snapshots) or "none yet"
        raise HTTPException(
            422, f"run {run_id} has no snapshot {body.from_step!r}; recorded: {known}"
        )
    if body.goal is not None and len(body.goal) > settings.max_goal_chars:
        raise HTTPException(422, f"goal is over the {settings.max_goal_chars}-character limit")
    source = state.task
    policy = source.policy
    if body.policy is not None or body.policy_script is not None:
        policy = choose_policy(
            body.policy or source.policy.name, body.policy_script, settings, store
        )
    task = replace(
        source,
        run_id=new_run_id(),
        goal=body.goal or source.goal,
        policy=policy,
        trace_id=current_trace_id(),
        max_repair_rounds=(
            source.max_repair_rounds if body.max_repair_rounds is None else body.max_repair_rounds
        ),
        start_snapshot=snapshot,
        forked_from=f"{run_id}@{body.from_step}",
        queues=run_queues(settings),
    )
    return await start_forward(client, settings, task)
