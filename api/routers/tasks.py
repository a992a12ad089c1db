"""POST /tasks: check the request, then start a ForwardPlanningWorkflow."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException

from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep
from api.models.inputs import EnvironmentIn, TaskCreate
from api.models.public import TaskAccepted
from api.repo_check import check_repo
from api.starting import choose_policy, new_run_id, run_queues, start_forward
from contracts.budget import Budget
from contracts.runs import TaskInput
from gym.errors import BadRepository
from gym.workspace import is_remote, resolve_local
from ratchet.telemetry import current_trace_id

router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=[Authenticated])


@router.post("", status_code=202, response_model=TaskAccepted)
async def create_task(
    body: TaskCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> TaskAccepted:
    if len(body.goal) > settings.max_goal_chars:
        raise HTTPException(
            422, f"goal is {len(body.goal)} characters; the limit is {settings.max_goal_chars}"
        )
    await check_repo(body.repo, settings)
    base_ref = body.base_ref
    if not is_remote(body.repo):
        try:
            # Pin the ref now: the run works on what the user saw when they asked.
            base_ref = await asyncio.to_thread(resolve_local, body.repo, body.base_ref)
        except BadRepository as err:
            raise HTTPException(422, str(err)) from None
    # Last of the checks: choosing a scripted policy stores its script.
    policy = choose_policy(body.policy, body.policy_script, settings, store)
    task = TaskInput(
        run_id=new_run_id(),
        repo=body.repo,
        goal=body.goal,
        policy=policy,
        base_ref=base_ref,
        test_command=body.test_command,
        trace_id=current_trace_id(),
        max_repair_rounds=(
            settings.max_repair_rounds if body.max_repair_rounds is None else body.max_repair_rounds
        ),
        test_timeout_s=settings.test_timeout_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        budget=Budget(**body.budget.model_dump()) if body.budget else Budget(),
        model_retry_initial_s=settings.model_retry_initial_s,
        model_retry_max_s=settings.model_retry_max_s,
        turns_per_execution=settings.agent_turns_per_execution,
        perspectives=body.perspectives,
        lenses=[lens[:40] for lens in body.lenses],
        adversarial=body.adversarial,
        invariants=body.invariants,
        memory=body.memory if body.memory is not None else policy.name != "scripted",
        pattern_share=body.pattern_share,
        approve_plan=body.approve_plan,
        require_approval=body.require_approval,
        approval_timeout_s=body.approval_timeout_s,
        queues=run_queues(settings),
        environment=EnvironmentIn.spec(body.environment),
    )
    return await start_forward(client, settings, task)
