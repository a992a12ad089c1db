"""Composition root: builds the clients, the policies and the activities, and runs the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anthropic
import httpx
import temporalio.activity
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Worker

from activities.agent import AgentActivities
from activities.capacity import capacity
from activities.delivery import GitHubConfig
from activities.drift import DriftActivities
from activities.envs import EnvironmentActivities
from activities.forward import ForwardActivities
from activities.investigation import InvestigationActivities
from activities.models import Models
from activities.observe import ObserveInterceptor
from activities.roles import RoleActivities
from activities.runner import RunnerConfig
from activities.testing import TestActivities
from agents.claude import AnthropicModel, ModelSettings
from agents.ledger import DEFAULT_PRICES
from agents.model import Model
from agents.openai_compat import OpenAICompatModel
from contracts.activities import spec
from gym.allowlist import Allowlist, build_allowlist
from gym.runner import Limits
from gym.sandbox import choose_sandbox
from ratchet.settings import Settings, load_settings
from ratchet.stores import artifact_store
from ratchet.telemetry import install
from workflows.agent import AgentLoopWorkflow
from workflows.drift import DriftWorkflow
from workflows.forward import ForwardPlanningWorkflow
from workflows.investigation import InvestigationWorkflow

log = logging.getLogger("ratchet.worker")
WORKFLOWS = [ForwardPlanningWorkflow, AgentLoopWorkflow, InvestigationWorkflow, DriftWorkflow]
# A bug in workflow code (these are what bugs raise) fails the run with its message, instead of
# failing its workflow task over and over: a run that hangs says nothing. A non-determinism error
# is not among them: after a bad deploy, runs wait for a fixed worker instead of failing.
WORKFLOW_FAILURE_TYPES: list[type[BaseException]] = [
    TypeError,
    AttributeError,
    NameError,
    LookupError,
    ValueError,
    ArithmeticError,
    AssertionError,
]


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic | None:
    if settings.anthropic_api_key is None:
        return None
    # max_retries=0: Temporal owns retries, so every attempt shows in the workflow's history.
    # ANTHROPIC_BASE_URL is read by the SDK itself, so a proxy or gateway can sit in front.
    return anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(), max_retries=0
    )


def openai_model(settings: Settings) -> OpenAICompatModel | None:
    if not settings.openai_base_url:
        return None
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    http = httpx.AsyncClient(
        base_url=settings.openai_base_url.rstrip("/") + "/", headers=headers, timeout=600
    )
    return OpenAICompatModel(
        http, model=settings.openai_model, max_tokens=settings.openai_max_tokens
    )


def served_models(settings: Settings) -> dict[str, Model]:
    """The providers this worker can reach, by policy name (the scripted one needs none)."""
    served: dict[str, Model] = {}
    client = anthropic_client(settings)
    if client is not None:
        purposes = {"plan", "code", "refactor", *settings.models}
        roles = {p: ModelSettings(*settings.role_model(p)) for p in purposes}
        served["anthropic"] = AnthropicModel(client, roles)
    local = openai_model(settings)
    if local is not None:
        served["openai-compatible"] = local
    return served


async def connect(settings: Settings, provider: TracerProvider) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.namespace,
        interceptors=[TracingInterceptor(provider.get_tracer("ratchet.worker"))],
    )


def github_config(settings: Settings) -> GitHubConfig | None:
    if settings.github_token is None:
        return None
    return GitHubConfig(
        token=settings.github_token.get_secret_value(),
        api_url=settings.github_api_url,
        run_url=settings.workflow_ui_url,
        trace_url=settings.trace_page,
    )


def runner_config(settings: Settings) -> RunnerConfig:
    limits = Limits(
        timeout_s=settings.test_timeout_s,
        memory_bytes=settings.sandbox_memory_mb * 2**20,
        cpu_seconds=settings.sandbox_cpu_seconds,
        max_processes=settings.sandbox_max_processes,
    )
    sandbox = choose_sandbox(
        require=settings.require_sandbox, allow=settings.sandbox.lower() != "none"
    )
    if sandbox.name == "none":
        log.warning("NO SANDBOX: repository code will run unconfined (%s)", sandbox.description)
    return RunnerConfig(
        limits=limits, sandbox=sandbox, reruns=settings.flaky_reruns,
        allowlist=_allowlist(settings),
        env_limits=replace(limits, timeout_s=settings.env_timeout_s),
        tool_timeout_s=settings.tool_timeout_s,
    )  # fmt: skip


def _allowlist(settings: Settings) -> Allowlist:
    try:
        return build_allowlist(settings.env_allowed_hosts)
    except ValueError as err:  # a bad entry stops start-up, with its name
        raise SystemExit(str(err)) from None


def build_workers(client: Client, settings: Settings) -> list[Worker]:
    """One worker per task queue this process polls (RATCHET_WORKER_QUEUES)."""
    main, model, sandbox = settings.queues
    queues = {"main": main, "model": model, "sandbox": sandbox}
    by_queue: dict[str, list[Callable[..., Any]]] = {main: [], model: [], sandbox: []}
    for fn in all_activities(settings):  # each on the queue the registry names
        by_queue[queues[spec(activity_name(fn)).queue]].append(fn)
    polled = _polled(settings)
    return [
        Worker(
            client,
            task_queue=queue,
            workflows=[
                ForwardPlanningWorkflow,
                AgentLoopWorkflow,
                InvestigationWorkflow,
                DriftWorkflow,
            ]
            if queue == main
            else [],
            activities=fns,
            workflow_failure_exception_types=WORKFLOW_FAILURE_TYPES,
            max_concurrent_activities=settings.max_concurrent_activities,
            interceptors=[ObserveInterceptor()],
        )
        for queue, fns in by_queue.items()
        if queue in polled
    ]


def all_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity, built over this deployment's store, runner and models."""
    store = artifact_store(settings)
    runner = runner_config(settings)
    models = Models(store, served_models(settings))
    prices = {**DEFAULT_PRICES, **settings.model_prices}
    forward = ForwardActivities(
        home=settings.home, store=store, models=models, prices=prices,
        github=github_config(settings),
    )  # fmt: skip
    tests = TestActivities(home=settings.home, store=store, runner=runner)
    agent = AgentActivities(
        home=settings.home, store=store, runner=runner, models=models, prices=prices
    )
    investigation = InvestigationActivities(home=settings.home, store=store, runner=runner)
    roles_activities = RoleActivities(
        home=settings.home, store=store, runner=runner, models=models, prices=prices
    )
    return [
        *forward.all(), tests.run_tests, tests.lint, tests.performance, *agent.all(),
        *EnvironmentActivities(home=settings.home, store=store, runner=runner).all(),
        *investigation.all(), capacity, *roles_activities.all(),
        *DriftActivities(home=settings.home, store=store, runner=runner).all(),
    ]  # fmt: skip


def _polled(settings: Settings) -> set[str]:
    every = set(settings.queues)
    if not settings.worker_queues:
        return every
    chosen = {q.strip() for q in settings.worker_queues.split(",") if q.strip()}
    unknown = chosen - every
    if unknown:
        raise SystemExit(
            f"RATCHET_WORKER_QUEUES names {', '.join(sorted(unknown))}, which is none of this "
            f"deployment's queues ({', '.join(sorted(every))})"
        )
    return chosen


def build_worker(client: Client, settings: Settings) -> Worker:
    """The one worker of a deployment where every queue is the same (the default)."""
    if len(_polled(settings)) != 1:  # checked first: making a Worker registers it
        raise ValueError("this deployment splits its queues: use build_workers")
    return build_workers(client, settings)[0]


def activity_name(fn: Callable[..., Any]) -> str:
    # The SDK keeps an activity's registered name on its definition and exposes no public
    # accessor; the worker itself reads it the same way.
    definition = temporalio.activity._Definition.from_callable(fn)
    return definition.name if definition and definition.name else fn.__name__


async def serve(settings: Settings) -> None:
    provider, meters = install(settings, "ratchet-worker")
    try:
        client = await connect(settings, provider)
        workers = build_workers(client, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        queues = ", ".join(w.task_queue for w in workers)
        log.info("worker polling %s on %s", queues, settings.temporal_target)
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            await stop.wait()
        log.info("worker stopped")
    finally:
        provider.shutdown()
        meters.shutdown()


def main() -> None:
    asyncio.run(serve(load_settings()))
    # Leave without interpreter teardown: the Temporal client can abort at exit (sdk-python#300).
    os._exit(0)


if __name__ == "__main__":
    main()
