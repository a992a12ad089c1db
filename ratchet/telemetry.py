"""Tracing, metrics and logs set-up shared by the API, the worker and the CLI.

Spans always go to $RATCHET_HOME/traces.jsonl (one JSON object per span, which `ratchet trace`
reads back) and also to an OTLP/HTTP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set; metrics
go to that collector. Every exported span and log line passes the secret scrubber first.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from ratchet.logs import RUN_ID_ATTRIBUTE, configure_logging
from ratchet.scrub import Scrubber
from ratchet.settings import Settings

__all__ = ["RUN_ID_ATTRIBUTE", "build_tracer_provider", "current_trace_id", "install"]


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits ("" outside a trace)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a JSON-lines file shared by every Ratchet process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            # One write per batch on an O_APPEND descriptor: processes do not interleave lines.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    assert context is not None  # a finished SDK span always has a context
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "links": [
            {"trace_id": format(link.context.trace_id, "032x"),
             "span_id": format(link.context.span_id, "016x")}
            for link in span.links
        ],
        "events": [e.name for e in span.events],
    }  # fmt: skip


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)


class ScrubbingSpanExporter(SpanExporter):
    """Exports through `inner`, with secrets in names, attributes and events redacted."""

    def __init__(self, inner: SpanExporter, scrubber: Scrubber) -> None:
        self.inner = inner
        self.scrubber = scrubber

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._clean(span) for span in spans])

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        text = self.scrubber.text
        attributes = {k: _scrub_value(v, text) for k, v in (span.attributes or {}).items()}
        events = [
            Event(e.name, {k: _scrub_value(v, text) for k, v in (e.attributes or {}).items()},
                  e.timestamp)
            for e in span.events
        ]  # fmt: skip
        status = span.status
        if status.description:
            status = Status(status.status_code, text(status.description))
        return ReadableSpan(
            name=text(span.name), context=span.context, parent=span.parent,
            resource=span.resource, attributes=attributes, events=events, links=span.links,
            kind=span.kind, status=status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )  # fmt: skip

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _scrub_value(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, tuple | list):
        return tuple(text(v) if isinstance(v, str) else v for v in value)
    return value


def otlp_url(settings: Settings, signal: str) -> str | None:
    if not settings.otlp_endpoint:
        return None
    endpoint = settings.otlp_endpoint.rstrip("/")
    return endpoint if endpoint.endswith(f"/v1/{signal}") else f"{endpoint}/v1/{signal}"


def build_tracer_provider(settings: Settings, service: str) -> TracerProvider:
    """A provider for one process; callers pass it explicitly instead of relying on globals."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    scrubber = Scrubber(settings.secret_values())
    exporters: list[SpanExporter] = [JsonlSpanExporter(settings.traces_file)]
    if url := otlp_url(settings, "traces"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=url, timeout=5))
    for exporter in exporters:
        # A short delay keeps `ratchet trace` current; a short export timeout keeps shutdown
        # quick when no collector is listening.
        provider.add_span_processor(BatchSpanProcessor(
            ScrubbingSpanExporter(exporter, scrubber), schedule_delay_millis=500,
            export_timeout_millis=5000,
        ))  # fmt: skip
    return provider


def build_meter_provider(settings: Settings, service: str) -> MeterProvider:
    """Metrics over OTLP/HTTP when a collector is configured; otherwise kept in the process."""
    readers = []
    # OTEL_METRICS_EXPORTER=none: the collector takes traces only (Arize Phoenix answers 405).
    wanted = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() != "none"
    if wanted and (url := otlp_url(settings, "metrics")):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=url, timeout=5), export_interval_millis=10_000,
        ))  # fmt: skip
    return MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": service})
    )


def install(settings: Settings, service: str) -> tuple[TracerProvider, MeterProvider]:
    """A process's telemetry: providers set globally (the gym's process spans and the metrics
    use the global API), and JSON logs on stderr carrying trace and run ids."""
    tracer_provider = build_tracer_provider(settings, service)
    meter_provider = build_meter_provider(settings, service)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    configure_logging(Scrubber(settings.secret_values()), service)
    return tracer_provider, meter_provider
