"""POST /investigations: find the commit that broke something, prove it, fix it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException

from api.deps import Authenticated, SettingsDep, StoreDep, TemporalClientDep
from api.models.inputs import EnvironmentIn, InvestigationCreate
from api.models.public import TaskAccepted
from api.repo_check import check_repo
from api.sentry import event_from, event_from_traceback
from api.starting import choose_policy, new_run_id, run_queues, start_investigation
from contracts.investigation import InvestigationInput
from contracts.sentry import SentryEvent
from gym.errors import BadRepository
from gym.workspace import is_remote, resolve_local
from ratchet.telemetry import current_trace_id

router = APIRouter(prefix="/investigations", tags=["investigations"], dependencies=[Authenticated])


@router.post("", status_code=202, response_model=TaskAccepted)
async def create_investigation(
    body: InvestigationCreate, settings: SettingsDep, store: StoreDep, client: TemporalClientDep
) -> TaskAccepted:
    if body.reproduce.test_command and body.reproduce.test_id:
        raise HTTPException(422, "reproduce takes test_command or test_id, not both")
    if body.kind == "performance" and not body.good_ref:
        raise HTTPException(422, "a performance investigation needs good_ref (the fast commit)")
    event = _evidence(body)
    if body.reproduce.write:
        if body.policy is None:
            raise HTTPException(422, 'reproduce.write needs a policy to write the test: pass '
                                '"policy" (or give reproduce.test_command)')  # fmt: skip
        if event is None:
            raise HTTPException(422, 'reproduce.write needs the error: "event" or "traceback"')
        if body.reproduce.test_command or body.reproduce.test_id:
            raise HTTPException(422, "reproduce.write writes the reproduction: it takes no "
                                "test_command or test_id")  # fmt: skip
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
    run_id = new_run_id("investigation")
    inp = InvestigationInput(
        run_id=run_id, kind=body.kind, repo=body.repo, bad_ref=bad, good_ref=good,
        test_command=body.reproduce.test_command, test_id=body.reproduce.test_id, policy=policy,
        trace_id=current_trace_id(),
        parallel_probes=body.parallel_probes or settings.parallel_probes,
        test_timeout_s=settings.test_timeout_s, heartbeat_timeout_s=settings.heartbeat_timeout_s,
        benchmark_runs=body.benchmark_runs, max_slowdown=body.max_slowdown,
        queues=run_queues(settings), suite_command=body.test_command,
        environment=EnvironmentIn.spec(body.environment), event=event,
        write_reproduction=body.reproduce.write,
        reproducer_attempts=settings.reproducer_attempts,
    )  # fmt: skip
    return await start_investigation(client, settings, inp)


def _evidence(body: InvestigationCreate) -> SentryEvent | None:
    """The error the request names, as an event: Sentry's shape, or a printed traceback."""
    if body.event is not None and body.traceback is not None:
        raise HTTPException(422, 'give "event" or "traceback", not both')
    if body.event is not None:
        event = event_from(body.event)
        if not event.exception_type and not event.frames:
            raise HTTPException(422, "event has no exception: exception.values[-1] needs a "
                                "type and a stacktrace")  # fmt: skip
        return event
    if body.traceback is not None:
        parsed = event_from_traceback(body.traceback)
        if parsed is None:
            raise HTTPException(422, "traceback holds no Python traceback (a 'Traceback (most "
                                "recent call last):' block ending in the exception)")  # fmt: skip
        return parsed
    return None
