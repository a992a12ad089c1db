"""POST /investigations: find the commit that broke something, prove it, fix it."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, HTTPException
from opentelemetry import trace

from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep
from api.models import EnvironmentIn, InvestigationCreate, TaskAccepted
from api.repo_check import check_repo
from api.starting import choose_policy, run_queues, start_investigation
from gym.errors import BadRepository
from gym.workspace import is_remote, resolve_local
from ratchet.telemetry import RUN_ID_ATTRIBUTE, current_trace_id
from workflows.investigation_shared import InvestigationInput

router = APIRouter(prefix="/investigations", tags=["investigations"], dependencies=[Authenticated])


@router.post("", status_code=202, response_model=TaskAccepted)
async def create_investigation(
    body: InvestigationCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> TaskAccepted:
    if body.reproduce.test_command and body.reproduce.test_id:
        raise HTTPException(422, "reproduce takes test_command or test_id, not both")
    if body.kind == "performance" and not body.good_ref:
        raise HTTPException(422, "a performance investigation needs good_ref (the fast commit)")
    await check_repo(body.repo, settings)
    bad, good = body.bad_ref, body.good_ref
    if not is_remote(body.repo):
        try:
            bad = await asyncio.to_thread(resolve_local, body.repo, body.bad_ref)
            if good:
                good = await asyncio.to_thread(resolve_local, body.repo, good)
        except BadRepository as err:
            raise HTTPException(422, str(err)) from None
    # Without a policy an investigation still fixes: it reverts the culprit's guilty hunks.
    # Chosen last: a scripted policy's script is stored.
    policy = None
    if body.policy is not None:
        policy = choose_policy(body.policy, body.policy_script, settings, store)
    run_id = f"inv-{secrets.token_hex(6)}"
    trace.get_current_span().set_attribute(RUN_ID_ATTRIBUTE, run_id)
    inp = InvestigationInput(
        run_id=run_id, kind=body.kind, repo=body.repo, bad_ref=bad, good_ref=good,
        test_command=body.reproduce.test_command, test_id=body.reproduce.test_id, policy=policy,
        trace_id=current_trace_id(),
        parallel_probes=body.parallel_probes or settings.parallel_probes,
        test_timeout_s=settings.test_timeout_s, heartbeat_timeout_s=settings.heartbeat_timeout_s,
        benchmark_runs=body.benchmark_runs, max_slowdown=body.max_slowdown,
        queues=run_queues(settings), suite_command=body.test_command,
        environment=EnvironmentIn.spec(body.environment),
    )  # fmt: skip
    return await start_investigation(client, settings, inp)
