"""Spans emitted by a repository's own tests reach a collector inside the sandbox."""

from __future__ import annotations

from pathlib import Path

from gym.gates import observability_gate
from gym.runner import Limits
from gym.testing import run_tests
from tests.utils.envs import built, otel_setup
from tests.utils.pypi import PackageIndex
from tests.utils.repos import make_repo

INSTRUMENTED = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0"\n',
    "tests/test_shop.py": (
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n\n\n"
        "def test_checkout():\n"
        "    provider = TracerProvider()\n"
        "    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))\n"
        "    tracer = provider.get_tracer('shop')\n"
        "    with tracer.start_as_current_span('checkout'):\n"
        "        with tracer.start_as_current_span('charge-card'):\n"
        "            pass\n"
        "    provider.shutdown()\n"
    ),
}


async def test_spans_from_the_tests_are_collected_in_the_sandbox(
    tmp_path: Path, otel_index: PackageIndex
) -> None:
    repo = make_repo(tmp_path / "shop", INSTRUMENTED)
    # The repository's environment installs the SDK for real, from the loopback index.
    sandbox, _ = await built(
        tmp_path / "home", repo, otel_setup(otel_index.url), allowed=[otel_index.host]
    )
    run = await run_tests(
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=sandbox,
        collect_spans=True,
    )  # fmt: skip
    assert run.passed, run.result.output.decode()
    assert run.spans is not None
    names = {s["name"] for s in run.spans}
    assert names == {"checkout", "charge-card"}
    child = next(s for s in run.spans if s["name"] == "charge-card")
    parent = next(s for s in run.spans if s["name"] == "checkout")
    assert child["parent_span_id"] == parent["span_id"] and child["trace_id"] == parent["trace_id"]


async def test_without_collection_there_are_no_spans(tmp_path: Path) -> None:
    run = await run_tests("true", tmp_path, limits=Limits(timeout_s=60))
    assert run.spans is None


def test_observability_gate() -> None:
    assert observability_gate((), None).passed
    assert observability_gate(("checkout",), ["checkout", "x"]).passed
    missing = observability_gate(("checkout", "refund"), ["checkout"])
    assert not missing.passed and "refund" in missing.detail and "checkout," not in missing.detail
    assert not observability_gate(("checkout",), None).passed


def test_the_collector_decodes_otlp_protobuf_without_the_protobuf_library() -> None:
    # Encoded by the real protobuf classes, decoded by the collector's stdlib-only reader (it
    # runs on a bare interpreter inside the sandbox).
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    from gym.collector import spans_from_protobuf

    def kv(key: str, **value: object) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(**value))  # type: ignore[arg-type]

    span = Span(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), parent_span_id=bytes(range(1, 9)),
        name="charge-card", start_time_unix_nano=123, end_time_unix_nano=2**40,
        attributes=[kv("s", string_value="x"), kv("n", int_value=-5),
                    kv("d", double_value=1.5), kv("b", bool_value=True)],
        status=Status(code=2),
    )  # fmt: skip
    service = Resource(attributes=[kv("service.name", string_value="shop")])
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=service, scope_spans=[ScopeSpans(spans=[span])])]
    ).SerializeToString()
    assert spans_from_protobuf(body) == [{
        "name": "charge-card", "trace_id": bytes(range(16)).hex(),
        "span_id": bytes(range(8)).hex(), "parent_span_id": bytes(range(1, 9)).hex(),
        "service": "shop", "start_ns": 123, "end_ns": 2**40, "error": True,
        "attributes": {"s": "x", "n": -5, "d": 1.5, "b": True},
    }]  # fmt: skip
