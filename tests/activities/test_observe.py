"""How every activity is observed (activities/observe.py): the interceptor the worker installs
(ObserveInterceptor, as worker.py passes it) around real activities, in an activity context. Its
span says which attempt, run and step it is; the step-duration metric counts it by outcome."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.converter import default
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from activities.observe import ROUND_ATTRIBUTE, STEP_ATTRIBUTE, STEP_HEADER, ObserveInterceptor
from contracts.steps import PerfInput, PrepareInput
from contracts.steps import TestInput as StepInput
from ratchet.telemetry import RUN_ID_ATTRIBUTE
from tests.activities.conftest import WHEN, World, under_way
from tests.utils.repos import PY_REPO, make_repo


class _Run(ActivityInboundInterceptor):
    """The end of the chain: what the worker does last, call the activity."""

    def __init__(self) -> None:
        pass

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await input.fn(*input.args)


def observed(fn: Any, arg: object, step: list[object] | None) -> Any:
    headers = {} if step is None else {STEP_HEADER: default().payload_converter.to_payload(step)}
    chain = ObserveInterceptor().intercept_activity(_Run())

    async def run() -> Any:
        return await chain.execute_activity(ExecuteActivityInput(fn, [arg], None, headers))

    return run


def durations(reader: InMemoryMetricReader, step: str) -> dict[tuple[str, bool], int]:
    """Count of ratchet.step.duration points of `step`, by (outcome, retry)."""
    counts: dict[tuple[str, bool], int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "ratchet.step.duration":
                    continue
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    if attrs.get("step") == step:
                        key = (str(attrs["outcome"]), bool(attrs["retry"]))
                        counts[key] = getattr(point, "count", 0)
    return counts


def env_for(world: World, activity_type: str, attempt: int = 1) -> Any:
    env = world.env()
    env.info = replace(env.info, activity_type=activity_type, attempt=attempt,
                       workflow_id="task-0a1b2c3d4e5f")  # fmt: skip
    return env


async def test_a_step_is_named_on_its_span_and_timed_by_outcome(
    world: World, tmp_path: Path, tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader,
) -> None:  # fmt: skip
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    kind = f"ratchet.performance.{tmp_path.name}"  # this test's own step type
    env = env_for(world, kind, attempt=2)
    with tracer_provider.get_tracer("tests").start_as_current_span("RunActivity:test") as span:
        report = await env.run(observed(world.tests.performance, PerfInput(run, run.base_sha),
                                        ["performance", 3]))  # fmt: skip
    assert report.passed and report.detail == "no benchmark declared"
    (finished,) = [s for s in span_exporter.get_finished_spans()
                   if s.context.span_id == span.get_span_context().span_id]  # fmt: skip
    attrs = dict(finished.attributes or {})
    assert attrs["temporal.activity.attempt"] == 2
    assert attrs["temporal.activity.type"] == kind
    assert attrs[RUN_ID_ATTRIBUTE] == "task-0a1b2c3d4e5f"
    assert (attrs[STEP_ATTRIBUTE], attrs[ROUND_ATTRIBUTE]) == ("performance", 3)
    assert durations(metric_reader, kind) == {("completed", True): 1}


async def test_a_header_this_version_cannot_read_names_no_step(
    world: World, tmp_path: Path, tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:  # fmt: skip
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    env = env_for(world, "ratchet.performance")
    with tracer_provider.get_tracer("tests").start_as_current_span("RunActivity:test") as span:
        await env.run(observed(world.tests.performance, PerfInput(run, run.base_sha),
                               ["performance", "three", "extra"]))  # fmt: skip
    (finished,) = [s for s in span_exporter.get_finished_spans()
                   if s.context.span_id == span.get_span_context().span_id]  # fmt: skip
    assert STEP_ATTRIBUTE not in (finished.attributes or {})


async def test_failed_and_cancelled_steps_are_timed_as_such(
    world: World, tmp_path: Path, metric_reader: InMemoryMetricReader
) -> None:
    kind = f"ratchet.step.{tmp_path.name}"
    bad = PrepareInput("task-0a1b2c3d4e5f", "/no/such/repository", "HEAD", None, WHEN)
    with pytest.raises(ApplicationError):
        await env_for(world, kind).run(observed(world.forward.prepare, bad, None))
    assert durations(metric_reader, kind) == {("failed", False): 1}

    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    env = env_for(world, kind)
    marker = "27.1828"
    task = asyncio.ensure_future(env.run(observed(
        world.tests.run_tests, StepInput(run, run.base_sha, f"sleep {marker}", 60, "t"), None,
    )))  # fmt: skip
    await under_way(world, task, marker)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert durations(metric_reader, kind) == {("failed", False): 1, ("cancelled", False): 1}
