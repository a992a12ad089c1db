"""Starting a forward-planning run: shared by POST /tasks and POST /runs/{id}/fork."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from opentelemetry import trace
from temporalio.client import Client
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from agents.model import PolicyError
from agents.scripted import parse_script
from api.deps import TemporalUnavailable
from api.models.public import TaskAccepted
from contracts.investigation import INVESTIGATION_WORKFLOW, InvestigationInput
from contracts.runs import FORWARD_WORKFLOW, RUN_PREFIXES, PolicyChoice, Queues, TaskInput
from contracts.sentry import EventSignal
from ratchet import search_keys as search
from ratchet.artifacts import ArtifactStore
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE, current_trace_id
from ratchet.visibility import search_attributes_ready

# A start that Temporal cannot take in this time is answered 503 (retry), not left hanging.
START_TIMEOUT = timedelta(seconds=10)


def run_queues(settings: Settings) -> Queues:
    """Where a new run sends its model calls and sandboxed runs (deploy/README.md)."""
    _, model, sandbox = settings.queues
    return Queues(model=model, sandbox=sandbox)


def new_run_id(kind: str = "task") -> str:
    """A new run's id, tagged on the request's span (the one place run ids are minted)."""
    run_id = f"{RUN_PREFIXES[kind]}-{secrets.token_hex(6)}"
    trace.get_current_span().set_attribute(RUN_ID_ATTRIBUTE, run_id)
    return run_id


def choose_policy(
    name: str | None, script: str | None, settings: Settings, store: ArtifactStore
) -> PolicyChoice:
    """The policy a run will use; 422 with a way forward when the choice cannot work."""
    if name is None:
        if settings.anthropic_api_key is None:
            raise HTTPException(
                422,
                "no policy chosen and ANTHROPIC_API_KEY is not set on the server: set it to use "
                'Claude, or pass "policy": "scripted" with "policy_script": "<path>" '
                "(a test double that replays a script)",
            )
        name = "anthropic"
    if name == "openai-compatible":
        if not settings.openai_base_url:
            raise HTTPException(
                422, 'policy "openai-compatible" needs RATCHET_OPENAI_BASE_URL on the server'
            )
        if script:
            raise HTTPException(422, 'policy_script is only for "policy": "scripted"')
        return PolicyChoice("openai-compatible")
    if name == "anthropic":
        if settings.anthropic_api_key is None:
            raise HTTPException(422, 'policy "anthropic" needs ANTHROPIC_API_KEY on the server')
        if script:
            raise HTTPException(422, 'policy_script is only for "policy": "scripted"')
        return PolicyChoice("anthropic")
    if not script:
        raise HTTPException(422, 'policy "scripted" needs "policy_script": "<path to script>"')
    path = Path(script)
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


async def start_forward(client: Client, settings: Settings, task: TaskInput) -> TaskAccepted:
    summary = task.goal[:200]
    if task.policy.name == "scripted":
        summary = f"[scripted policy: TEST DOUBLE] {task.goal[:180]}"
    try:
        await client.start_workflow(
            FORWARD_WORKFLOW,
            task,
            id=task.run_id,
            task_queue=settings.task_queue,
            static_summary=summary,
            search_attributes=await tags(client, "task", task.repo, task.policy.name),
            rpc_timeout=START_TIMEOUT,
        )
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal refused the run: {err.message}") from None
    return accepted(settings, task.run_id, task.trace_id, task.policy.name, task.forked_from)


async def start_investigation(
    client: Client, settings: Settings, inp: InvestigationInput, *, join: bool = False
) -> TaskAccepted:
    """Start an investigation; with `join`, an investigation already running under the same id
    gets the event as a signal instead (Sentry redeliveries and repeats land in one run)."""
    title = inp.event.title if inp.event else f"{inp.kind} in {inp.repo}"
    options: dict[str, Any] = {}
    if join and inp.event is not None:
        options = {
            "start_signal": "event",
            "start_signal_args": [EventSignal(event_id=inp.event.event_id)],
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished investigation is not redone by a redelivery; a failed one may be.
            "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        }
    try:
        await client.start_workflow(
            INVESTIGATION_WORKFLOW,
            inp,
            id=inp.run_id,
            task_queue=settings.task_queue,
            static_summary=f"[investigation] {title[:180]}",
            search_attributes=await tags(
                client,
                "investigation",
                inp.repo,
                inp.policy.name if inp.policy else "none",
                inp.event.issue_id if inp.event else None,
            ),
            rpc_timeout=START_TIMEOUT,
            **options,
        )
    except WorkflowAlreadyStartedError:
        pass  # completed before: the run id still answers GET /runs
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal refused the run: {err.message}") from None
    return accepted(settings, inp.run_id, inp.trace_id, inp.policy.name if inp.policy else "none")


async def tags(
    client: Client, kind: str, repo: str, policy: str, sentry_issue: str | None = None
) -> TypedSearchAttributes | None:
    """A new run's search attributes, when its namespace has them registered."""
    if not await search_attributes_ready(client):
        return None
    return search.initial(kind, repo, policy, sentry_issue)


def accepted(
    settings: Settings, run_id: str, trace_id: str, policy: str, forked_from: str | None = None
) -> TaskAccepted:
    """The 202 answer of every endpoint that starts a run (the run id is the workflow id)."""
    return TaskAccepted(
        run_id=run_id,
        workflow_id=run_id,
        status_url=f"/runs/{run_id}",
        temporal_ui_url=settings.workflow_ui_url(run_id),
        trace_id=trace_id or current_trace_id(),
        policy=policy,
        forked_from=forked_from,
    )
