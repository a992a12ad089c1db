"""Tracing set-up shared by the API, the worker and the CLI.

Spans go to an OTLP/HTTP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set, otherwise to
$RATCHET_HOME/traces.jsonl, one JSON object per span, which `ratchet trace` reads back.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ratchet.settings import Settings

RUN_ID_ATTRIBUTE = "ratchet.run_id"


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
    }


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)


def build_tracer_provider(settings: Settings, service: str) -> TracerProvider:
    """A provider for one process; callers pass it explicitly instead of relying on globals."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter: SpanExporter
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=5)
    else:
        exporter = JsonlSpanExporter(settings.traces_file)
    # A short delay keeps `ratchet trace` current; a short export timeout keeps shutdown quick
    # when no collector is listening.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=500, export_timeout_millis=5000)
    )
    return provider


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
