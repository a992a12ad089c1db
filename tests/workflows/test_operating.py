"""What an operator sees: one trace from the request to the repository's own test spans,
the Temporal UI's search attributes and details, GET /runs, and the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from tests.utils.envs import otel_setup
from tests.utils.pypi import PackageIndex
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit

# The repository's own test reads TRACEPARENT and exports a span with the OpenTelemetry SDK, as
# an instrumented code base would in CI.
TRACED_TEST = (
    "import os\n"
    "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
    "from opentelemetry.sdk.resources import Resource\n"
    "from opentelemetry.sdk.trace import TracerProvider\n"
    "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
    "from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator\n"
    "from calc import add\n\n\n"
    "def test_add():\n"
    "    provider = TracerProvider(resource=Resource.create({'service.name': 'calc-tests'}))\n"
    "    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))\n"
    "    parent = TraceContextTextMapPropagator().extract(\n"
    "        {'traceparent': os.environ['TRACEPARENT']})\n"
    "    tracer = provider.get_tracer('calc')\n"
    "    with tracer.start_as_current_span('calc.add', context=parent) as span:\n"
    "        span.set_attribute('calc.result', add(2, 3))\n"
    "        assert add(2, 3) == 5\n"
    "    provider.shutdown()\n"
)


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context}


def _ancestry(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    names = []
    current: ReadableSpan | None = span
    while current is not None:
        names.append(current.name)
        current = index.get(current.parent.span_id) if current.parent else None
    return names


async def test_one_trace_runs_from_the_request_to_the_repository_s_own_test_spans(
    api: httpx.AsyncClient,
    worker: Worker,
    tmp_path: Path,
    span_exporter: InMemorySpanExporter,
    otel_index: PackageIndex,
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO | {"tests/test_calc.py": TRACED_TEST})
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    # The repository's environment has the OpenTelemetry SDK its test uses.
    run_id = await submit(api, repo, script, environment={"setup": otel_setup(otel_index.url)})
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run

    trace_id = int(run["trace_id"], 16)
    spans = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
    index = _by_id(spans)
    names = {s.name for s in spans}
    assert "POST /tasks" in names and "RunWorkflow:ForwardPlanningWorkflow" in names
    for step in ("prepare", "run_tests", "lint", "plan", "model_turn", "tool", "verify", "deliver"):
        assert f"RunActivity:ratchet.{step}" in names, step

    # Each run of the tests (baseline, three rounds) has a process span, and under it the span
    # the repository's test emitted: request → workflow → step → process → the test's span.
    from_tests = [s for s in spans if s.name == "calc.add"]
    assert len(from_tests) >= 3, names
    for span in from_tests:
        chain = _ancestry(span, index)
        assert chain[:3] == ["calc.add", "sandbox.process", "RunActivity:ratchet.run_tests"], chain
        assert chain[3:] == [
            "StartActivity:ratchet.run_tests", "StartWorkflow:ForwardPlanningWorkflow",
            "POST /tasks",
        ], chain  # fmt: skip
        assert span.attributes["ratchet.source"] == "repository-tests"
        assert span.attributes["calc.result"] == 5
        assert span.resource.attributes["service.name"] == "calc-tests"

    # Every activity span says which attempt it was and which run it served.
    activities = [s for s in spans if s.name.startswith("RunActivity:")]
    assert all(s.attributes["temporal.activity.attempt"] >= 1 for s in activities)
    assert all(s.attributes["ratchet.run_id"] == run_id for s in activities)
    # ... and which step and round it served: a refactor's turn never reads like a repair round.
    steps = {(s.name.removeprefix("RunActivity:"), s.attributes.get("ratchet.step"),
              s.attributes.get("ratchet.round")) for s in activities}  # fmt: skip
    assert ("ratchet.run_tests", "baseline", None) in steps
    assert {("ratchet.verify", "verify", 1), ("ratchet.verify", "verify", 2)} <= steps
    assert {("ratchet.model_turn", "patch", 1), ("ratchet.model_turn", "patch", 2),
            ("ratchet.model_turn", "refactor", 1)} <= steps  # fmt: skip
    assert all(s.attributes.get("ratchet.step") for s in activities), steps
    process = next(s for s in spans if s.name == "sandbox.process")
    assert process.attributes["ratchet.sandbox"] == "bwrap"
    assert "process.exit_code" in process.attributes


async def test_a_span_claiming_another_trace_is_not_forwarded(
    tmp_path: Path, span_exporter: InMemorySpanExporter
) -> None:
    from gym.spans import forward_spans

    ours, theirs = "ab" * 16, "cd" * 16
    records: list[dict[str, Any]] = [
        {"name": "mine", "trace_id": ours, "span_id": "1" * 16, "start_ns": 1, "end_ns": 2},
        {"name": "forged", "trace_id": theirs, "span_id": "2" * 16, "start_ns": 1, "end_ns": 2},
        {"name": "broken", "trace_id": ours, "span_id": "not hex"},
    ]
    assert forward_spans(records, ours) == 1
    names = {s.name for s in span_exporter.get_finished_spans()}
    assert "mine" in names and "forged" not in names and "broken" not in names


async def test_runs_are_found_by_search_attributes_through_the_api(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, client: Client
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    other = make_repo(tmp_path / "other", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    first = await submit(api, repo, script)
    second = await submit(api, repo, script, goal="add mul again")
    elsewhere = await submit(api, other, script)
    for run_id in (first, second, elsewhere):
        assert (await wait_for_end(api, run_id))["status"] == "completed"

    # The query a person types into the Temporal UI, through the API.
    query = f'RatchetRepo = "{repo}" AND RatchetStatus = "completed"'
    page = (await api.get("/runs", params={"query": query})).json()
    assert {r["run_id"] for r in page["runs"]} == {first, second}
    listed = next(r for r in page["runs"] if r["run_id"] == first)
    assert listed["kind"] == "task" and listed["status"] == "completed"
    assert listed["repo"] == str(repo) and listed["policy"] == "scripted"
    assert listed["summary"] == "[scripted policy: TEST DOUBLE] add mul"
    assert listed["temporal_ui_url"].endswith(f"/workflows/{first}")
    assert query in page["query"]

    # The same through filters, one run per page: two pages, then none.
    seen, token = [], None
    for _ in range(3):
        params = {"repo": str(repo), "status": "completed", "kind": "task", "page_size": "1"}
        if token:
            params["page_token"] = token
        page = (await api.get("/runs", params=params)).json()
        seen += [r["run_id"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(seen) == sorted([first, second]) and token is None
    assert [r["run_id"] for r in (await api.get("/runs", params={"repo": str(other)})).json()[
        "runs"]] == [elsewhere]  # fmt: skip

    # The workflow keeps RatchetStatus current and its details readable in the UI.
    described = await client.get_workflow_handle(first).describe()
    attributes = {
        k.name: v for k, v in ((p.key, p.value) for p in described.typed_search_attributes)
    }
    assert attributes["RatchetStatus"] == "completed" and attributes["RatchetKind"] == "task"
    history = await client.get_workflow_handle(first).fetch_history()
    upsert = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    upserts = [
        e
        for e in history.events
        if e.event_type == upsert
        and "RatchetStatus"
        in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert len(upserts) == 1  # completed: one upsert for the one change of status
    # (the other upsert is Temporal's TemporalChangeVersion, written by workflow.patched)
    scheduled = [e.user_metadata.summary for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]  # fmt: skip
    assert scheduled and all(s.data for s in scheduled)
    summaries = {client.data_converter.payload_converter.from_payload(s, str) for s in scheduled}
    assert "test (round 2): run the repository's tests in the sandbox" in summaries


async def test_bad_listing_requests_get_a_clear_4xx(api: httpx.AsyncClient) -> None:
    for params, status, words in (
        ({"query": "RatchetRepo = "}, 422, "Temporal refused the query"),
        ({"repo": 'x" OR RatchetKind != "'}, 422, "quotes"),
        ({"status": "sleeping"}, 422, ""),
        ({"page_size": "0"}, 422, ""),
        ({"page_token": "%%%"}, 422, "page_token"),
    ):
        response = await api.get("/runs", params=params)
        assert response.status_code == status, (params, response.text)
        assert words in response.text


def _totals(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[Any]], float]:
    """Every data point's sum (counters) or count (histograms), by metric and attributes."""
    totals: dict[tuple[str, frozenset[Any]], float] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for p in metric.data.data_points:
                    key = (metric.name, frozenset(p.attributes.items()))
                    totals[key] = getattr(p, "value", getattr(p, "count", 0))
    return totals


async def test_metrics_count_runs_steps_gates_and_kills(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, metric_reader: InMemoryMetricReader
) -> None:
    from gym.runner import Limits, run_command

    # The reader is the session's (other tests count too): compare this test's own increase.
    before = _totals(metric_reader)
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    run_id = await submit(api, repo, script)
    assert (await wait_for_end(api, run_id))["status"] == "completed"
    await run_command("sleep 5", tmp_path, limits=Limits(timeout_s=0.5))
    after = _totals(metric_reader)

    def added(name: str, **attributes: object) -> float:
        return sum(
            value - before.get(key, 0) for key, value in after.items()
            if key[0] == name and all((k, v) in key[1] for k, v in attributes.items())
        )  # fmt: skip

    assert added("ratchet.runs.started", kind="task") == 1
    assert added("ratchet.runs.ended", kind="task", outcome="completed") == 1
    # baseline, round 1 (fails), round 2 (passes): three test runs, and the re-run of round 1's
    # failing test is inside its step.
    assert added("ratchet.step.duration", step="ratchet.run_tests", outcome="completed") == 3
    assert added("ratchet.gate.outcomes", gate="tests", outcome="failed") == 1
    assert added("ratchet.gate.outcomes", gate="tests", outcome="passed") == 1
    assert added("ratchet.sandbox.kills", reason="timeout") == 1
