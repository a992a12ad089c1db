"""POST /webhooks/sentry: signed Sentry webhooks start (or join, or cancel) investigations.

Order matters: the size is checked before anything is read in full, the signature before the
body is parsed, and the answer comes as soon as the workflow is started (well within a second).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, TraceFlags
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SettingsDep, TemporalClientDep
from api.sentry import Delivery, WebhookRefused, parse, verify_signature
from api.starting import choose_policy, run_queues, start_investigation
from contracts.investigation import InvestigationInput
from contracts.runs import EnvironmentSpec, PolicyChoice
from contracts.sentry import SentryEvent
from ratchet.artifacts import ArtifactStore
from ratchet.metrics import WEBHOOK_DELIVERIES
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE, current_trace_id

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise WebhookRefused(413, f"body over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRefused(413, f"body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _sentry_link(event: SentryEvent) -> list[Link]:
    """A link from our trace to the Sentry event's own trace, when it carries one."""
    try:
        context = SpanContext(
            trace_id=int(event.trace_id, 16), span_id=int(event.span_id or "1", 16),
            is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )  # fmt: skip
    except ValueError:
        return []
    return [Link(context, {"sentry.issue_id": event.issue_id})] if context.is_valid else []


@router.post("/sentry", status_code=202, response_model=None)
async def sentry_webhook(
    request: Request, settings: SettingsDep, client: TemporalClientDep
) -> JSONResponse | dict[str, Any]:
    answer = await _sentry(request, settings, client)
    if isinstance(answer, JSONResponse):
        result = f"refused {answer.status_code}"
    else:
        result = str(answer.get("status", "started"))
    WEBHOOK_DELIVERIES.add(1, {"source": "sentry", "result": result})
    return answer


async def _sentry(
    request: Request, settings: SettingsDep, client: TemporalClientDep
) -> JSONResponse | dict[str, Any]:
    try:
        delivery = await _verified(request, settings)
    except WebhookRefused as refused:
        return _refuse(refused.status, str(refused))
    resource, action = delivery.resource, delivery.action
    if resource == "installation":
        return {"status": "acknowledged", "action": action}
    run_id = f"sentry-{delivery.issue_id}"
    if resource == "issue" and action in ("resolved", "ignored", "archived"):
        return await _cancel(request, client, run_id)
    if resource == "issue" and action not in ("created", "unresolved"):
        return _refuse(422, f"issue action {action[:50]!r} starts nothing")
    mapping = settings.sentry_projects.get(delivery.project)
    if not isinstance(mapping, dict) or not mapping.get("repo"):
        project = delivery.project[:100]
        return _refuse(422, f"Sentry project {project!r} is not mapped (RATCHET_SENTRY_PROJECTS)")
    event = delivery.event
    if event is None:
        return _refuse(400, f"{resource} webhook without an event")
    recent: RecentDeliveries = request.app.state.recent_sentry
    # An issue webhook carries no event id: its action names the delivery.
    key = (run_id, event.event_id or f"{resource}.{action}")
    if (known := recent.get(key)) is not None:
        return known  # a redelivery: answered as before, without another signal in the history
    try:
        policy = _policy(mapping, settings, request.app.state.store)
    except WebhookRefused as refused:
        return _refuse(refused.status, str(refused))
    # Across API replicas: the one that claims the delivery in the shared store starts (or
    # signals) the run; the others answer it as a repeat. A claim lasts its time window.
    store: ArtifactStore = request.app.state.store
    claim = _claim(key)
    if not await asyncio.to_thread(store.claim, claim):
        return _repeat(run_id, request)
    tracer: trace.Tracer = request.app.state.temporal.tracer
    try:
        with tracer.start_as_current_span("sentry.webhook", links=_sentry_link(event)) as span:
            span.set_attribute(RUN_ID_ATTRIBUTE, run_id)
            inp = _investigation(run_id, mapping, event, policy, settings)
            accepted = await start_investigation(client, settings, inp, join=True)
    except BaseException:
        await asyncio.to_thread(store.release, claim)  # a refused start must be redelivered
        raise
    answer = accepted.model_dump()
    recent.put(key, answer)  # only once started: a refused start must be redelivered
    return answer


CLAIM_WINDOW_S = 300


def _claim(key: tuple[str, str]) -> str:
    """The store's marker of a delivery in this time window (so it never has to be swept)."""
    digest = hashlib.sha256(key[1].encode()).hexdigest()[:32]
    return f"{key[0]}.{digest}.{int(time.time() // CLAIM_WINDOW_S)}"


def _repeat(run_id: str, request: Request) -> dict[str, Any]:
    """What a replica that did not claim a delivery answers: the run it belongs to."""
    settings: Settings = request.app.state.settings
    return {"run_id": run_id, "workflow_id": run_id, "status_url": f"/runs/{run_id}",
            "temporal_ui_url": settings.workflow_ui_url(run_id), "status": "repeat"}  # fmt: skip


async def _verified(request: Request, settings: Settings) -> Delivery:
    """The delivery, once its size, its signature and its resource header are checked."""
    raw = await _read_limited(request, settings.sentry_max_body_bytes)
    if settings.sentry_client_secret is None:
        raise WebhookRefused(401, "Sentry webhooks are off: RATCHET_SENTRY_CLIENT_SECRET is unset")
    verify_signature(raw, request.headers.get("sentry-hook-signature"),
                     settings.sentry_client_secret.get_secret_value())  # fmt: skip
    resource = request.headers.get("sentry-hook-resource", "")
    if not resource:
        raise WebhookRefused(400, "no Sentry-Hook-Resource header")
    return parse(resource, raw)


async def _cancel(request: Request, client: TemporalClientDep, run_id: str) -> dict[str, Any]:
    """A resolved (ignored, archived) issue: its investigation is cancelled, if one runs."""
    request.app.state.recent_sentry.forget(run_id)  # a later repeat must reach the run
    await asyncio.to_thread(request.app.state.store.release, f"{run_id}.")
    try:
        await client.get_workflow_handle(run_id).cancel()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return {"status": "nothing to cancel", "run_id": run_id}
    return {"status": "cancelling", "run_id": run_id}


def _investigation(
    run_id: str,
    mapping: dict[str, Any],
    event: SentryEvent,
    policy: PolicyChoice | None,
    settings: Settings,
) -> InvestigationInput:
    """The investigation of an event, as the project's mapping configures it."""
    return InvestigationInput(
        run_id=run_id, kind="regression", repo=str(mapping["repo"]),
        good_ref=mapping.get("good_ref"), test_command=mapping.get("test_command"),
        event=event, trace_id=current_trace_id(), parallel_probes=settings.parallel_probes,
        test_timeout_s=settings.test_timeout_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s, queues=run_queues(settings),
        environment=_environment(mapping.get("environment")),
        policy=policy,
        write_reproduction=_obj(mapping, "reproduce").get("write") is True,
        reproducer_attempts=settings.reproducer_attempts,
    )  # fmt: skip


def _policy(
    mapping: dict[str, Any], settings: Settings, store: ArtifactStore
) -> PolicyChoice | None:
    """A project mapping's "policy" (and "policy_script"): who writes the reproduction and the
    fix (operator configuration; without one, the culprit is reverted)."""
    name = mapping.get("policy")
    if name is None:
        return None
    try:
        return choose_policy(str(name), mapping.get("policy_script"), settings, store)
    except HTTPException as err:  # a broken mapping: say so, start nothing
        raise WebhookRefused(422, f"RATCHET_SENTRY_PROJECTS: {err.detail}") from None


def _obj(value: object, key: str) -> dict[str, Any]:
    inner = value.get(key) if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


def _environment(value: object) -> EnvironmentSpec | None:
    """A project mapping's {"setup": [...], "key_files"?: [...]} (operator configuration)."""
    if not isinstance(value, dict) or not isinstance(value.get("setup"), list):
        return None
    setup = [str(c) for c in value["setup"] if str(c).strip()]
    return EnvironmentSpec(setup, [str(f) for f in value.get("key_files") or []]) if setup else None


class RecentDeliveries:
    """Answers to deliveries this process started runs for, for a few minutes: Sentry redelivers,
    and each signal of a repeat would only grow the investigation's history."""

    def __init__(self, ttl_s: float = 300.0, most: int = 10_000) -> None:
        self.ttl_s, self.most = ttl_s, most
        self._answers: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        found = self._answers.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl_s:
            return None
        return found[1]

    def forget(self, run_id: str) -> None:
        for key in [k for k in self._answers if k[0] == run_id]:
            del self._answers[key]

    def put(self, key: tuple[str, str], answer: dict[str, Any]) -> None:
        if len(self._answers) >= self.most:  # oldest first: dicts keep insertion order
            for old in list(self._answers)[: self.most // 10]:
                del self._answers[old]
        self._answers[key] = (time.monotonic(), answer)
