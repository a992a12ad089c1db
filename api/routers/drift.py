"""POST /drift (one spec drift check now) and /schedules (drift checks on a Temporal Schedule)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from fastapi import APIRouter, HTTPException
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep
from api.models.inputs import DriftCreate, EnvironmentIn, ScheduleCreate
from api.models.public import ScheduleCreated, SchedulePublic, TaskAccepted
from api.repo_check import check_repo
from api.starting import accepted, choose_policy, new_run_id, run_queues, tags
from contracts.drift import DRIFT_WORKFLOW, DriftInput
from gym.errors import BadRepository
from gym.workspace import is_remote, resolve_local
from ratchet.settings import Settings
from ratchet.telemetry import current_trace_id

router = APIRouter(tags=["drift"], dependencies=[Authenticated])


async def _drift_input(body: DriftCreate, settings: Settings, store: StoreDep) -> DriftInput:
    await check_repo(body.repo, settings)
    if not is_remote(body.repo):
        try:
            await asyncio.to_thread(resolve_local, body.repo, body.ref)
        except BadRepository as err:
            raise HTTPException(422, str(err)) from None
    policy = choose_policy(body.policy, body.policy_script, settings, store)  # stores a script
    return DriftInput(
        repo=body.repo, policy=policy, ref=body.ref, investigate=body.investigate,
        trace_id=current_trace_id(), test_timeout_s=settings.test_timeout_s,
        queues=run_queues(settings), environment=EnvironmentIn.spec(body.environment),
    )  # fmt: skip


@router.post("/drift", status_code=202, response_model=TaskAccepted)
async def check_drift(
    body: DriftCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> TaskAccepted:
    inp = await _drift_input(body, settings, store)
    run_id = new_run_id("drift")
    await client.start_workflow(
        DRIFT_WORKFLOW, inp, id=run_id, task_queue=settings.task_queue,
        static_summary=f"[drift] {body.repo}",
        search_attributes=await tags(client, "drift", body.repo, inp.policy.name),
    )  # fmt: skip
    return accepted(settings, run_id, inp.trace_id, inp.policy.name)


@router.post("/schedules", status_code=201, response_model=ScheduleCreated)
async def create_schedule(
    body: ScheduleCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> ScheduleCreated:
    inp = await _drift_input(body, settings, store)
    schedule_id = f"drift-schedule-{secrets.token_hex(6)}"
    action = ScheduleActionStartWorkflow(
        DRIFT_WORKFLOW, inp, id=f"{schedule_id}-run", task_queue=settings.task_queue,
        typed_search_attributes=await tags(client, "drift", body.repo, inp.policy.name)
        or TypedSearchAttributes.empty,
        static_summary=f"[drift, scheduled] {body.repo}",
    )  # fmt: skip
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=body.every_s))])
    try:
        await client.create_schedule(schedule_id, Schedule(action=action, spec=spec))
    except ScheduleAlreadyRunningError:
        raise HTTPException(409, f"schedule {schedule_id} exists") from None
    ui = f"{settings.ui_base}/namespaces/{settings.namespace}/schedules/{schedule_id}"
    return ScheduleCreated(schedule_id=schedule_id, every_s=body.every_s, temporal_ui_url=ui)


async def _schedule(client: TemporalClientDep, schedule_id: str) -> SchedulePublic:
    handle = client.get_schedule_handle(schedule_id)
    try:
        found = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no schedule {schedule_id!r}") from None
        raise
    recent = [
        a.action.workflow_id for a in found.info.recent_actions
        if hasattr(a.action, "workflow_id")
    ]  # fmt: skip
    return SchedulePublic(
        schedule_id=schedule_id, paused=found.schedule.state.paused, recent_runs=recent,
        next_runs=[t.isoformat() for t in found.info.next_action_times[:3]],
    )  # fmt: skip


@router.get("/schedules/{schedule_id}", response_model=SchedulePublic)
async def get_schedule(schedule_id: str, client: TemporalClientDep) -> SchedulePublic:
    return await _schedule(client, schedule_id)


@router.post("/schedules/{schedule_id}/trigger", status_code=202, response_model=SchedulePublic)
async def trigger_schedule(schedule_id: str, client: TemporalClientDep) -> SchedulePublic:
    """Run the scheduled check now, without waiting for its next time."""
    found = await _schedule(client, schedule_id)
    await client.get_schedule_handle(schedule_id).trigger()
    return found


@router.delete("/schedules/{schedule_id}", status_code=204)
async def delete_schedule(schedule_id: str, client: TemporalClientDep) -> None:
    await _schedule(client, schedule_id)
    await client.get_schedule_handle(schedule_id).delete()
