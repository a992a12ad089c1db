"""POST /tasks: check the request, then start a ForwardPlanningWorkflow."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from fastapi import APIRouter, HTTPException
from opentelemetry import trace
from temporalio.service import RPCError

from agents.policy import PolicyError
from agents.scripted import parse_script
from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep, TemporalUnavailable
from api.models import TaskAccepted, TaskCreate
from gym.errors import BadRepository
from gym.workspace import is_remote, resolve_local
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE, current_trace_id
from workflows.shared import FORWARD_WORKFLOW, PolicyChoice, TaskInput

router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=[Authenticated])


def _choose_policy(body: TaskCreate, settings: Settings, store: StoreDep) -> PolicyChoice:
    name = body.policy
    if name is None:
        if settings.anthropic_api_key is None:
            raise HTTPException(
                422,
                "no policy chosen and ANTHROPIC_API_KEY is not set on the server: set it to use "
                'Claude, or pass "policy": "scripted" with "policy_script": "<path>" '
                "(a test double that replays a script)",
            )
        name = "anthropic"
    if name == "anthropic":
        if settings.anthropic_api_key is None:
            raise HTTPException(422, 'policy "anthropic" needs ANTHROPIC_API_KEY on the server')
        if body.policy_script:
            raise HTTPException(422, 'policy_script is only for "policy": "scripted"')
        return PolicyChoice("anthropic")
    if not body.policy_script:
        raise HTTPException(422, 'policy "scripted" needs "policy_script": "<path to script>"')
    path = Path(body.policy_script)
    if not path.is_absolute() or not path.is_file():
        raise HTTPException(422, f"policy_script must be an absolute path to a file: {path}")
    if path.stat().st_size > settings.max_script_bytes:
        raise HTTPException(413, f"policy_script is over {settings.max_script_bytes} bytes")
    text = path.read_text(errors="replace")
    try:
        parse_script(text)
    except PolicyError as err:
        raise HTTPException(422, str(err)) from None
    return PolicyChoice("scripted", store.put_text(text))


@router.post("", status_code=202, response_model=TaskAccepted)
async def create_task(
    body: TaskCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> TaskAccepted:
    if len(body.goal) > settings.max_goal_chars:
        raise HTTPException(
            422, f"goal is {len(body.goal)} characters; the limit is {settings.max_goal_chars}"
        )
    policy = _choose_policy(body, settings, store)
    base_ref = body.base_ref
    if not is_remote(body.repo):
        try:
            # Pin the ref now: the run works on what the user saw when they asked.
            base_ref = await asyncio.to_thread(resolve_local, body.repo, body.base_ref)
        except BadRepository as err:
            raise HTTPException(422, str(err)) from None
    run_id = f"task-{secrets.token_hex(6)}"
    trace.get_current_span().set_attribute(RUN_ID_ATTRIBUTE, run_id)
    trace_id = current_trace_id()
    task = TaskInput(
        run_id=run_id,
        repo=body.repo,
        goal=body.goal,
        policy=policy,
        base_ref=base_ref,
        test_command=body.test_command,
        trace_id=trace_id,
        max_repair_rounds=(
            settings.max_repair_rounds if body.max_repair_rounds is None else body.max_repair_rounds
        ),
        test_timeout_s=settings.test_timeout_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
    )
    try:
        await client.start_workflow(
            FORWARD_WORKFLOW,
            task,
            id=run_id,
            task_queue=settings.task_queue,
            static_summary=(
                f"[scripted policy: TEST DOUBLE] {body.goal[:180]}"
                if policy.name == "scripted"
                else body.goal[:200]
            ),
        )
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal refused the run: {err.message}") from None
    return TaskAccepted(
        run_id=run_id,
        workflow_id=run_id,
        status_url=f"/runs/{run_id}",
        temporal_ui_url=settings.workflow_ui_url(run_id),
        trace_id=trace_id,
        policy=policy.name,
    )
