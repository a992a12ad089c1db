"""Every sandboxed process gets a span, and a repository's own test spans join the run's trace.

The process span's context goes to the command as `TRACEPARENT` (W3C trace context), so tests
that read it parent their spans under the run. Spans the tests export to the collector in the
sandbox are untrusted data: only those in the run's own trace are forwarded, capped in number
and size, and marked as coming from the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

MAX_FORWARDED = 2000
MAX_ATTRIBUTES = 64
MAX_VALUE_CHARS = 1000
SOURCE_ATTRIBUTE = "ratchet.source"
FROM_REPOSITORY = "repository-tests"

_tracer = trace.get_tracer("ratchet.gym")


@contextmanager
def process_span(name: str, command: str, isolation: str = "") -> Iterator[Span]:
    """A span around one sandboxed process; its context is what the process inherits."""
    attributes = {"process.command_line": command[:MAX_VALUE_CHARS]}
    if isolation:
        attributes["ratchet.sandbox"] = isolation.split(":", 1)[0]
    with _tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def trace_env() -> dict[str, str]:
    """TRACEPARENT (and TRACESTATE) of the current span, for a child process's environment."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return {key.upper(): value for key, value in carrier.items()}


def forward_spans(records: list[dict[str, Any]], trace_id: str) -> int:
    """Hand spans the tests exported to this process's span pipeline; returns how many."""
    processor = getattr(trace.get_tracer_provider(), "_active_span_processor", None)
    if processor is None or not trace_id:
        return 0  # no SDK provider here (tracing off): nothing to join
    forwarded = 0
    for record in records:
        if forwarded >= MAX_FORWARDED:
            break
        span = _readable(record, trace_id)
        if span is not None:
            # The SDK gives no public way to export a span made elsewhere; the span processor
            # is what every SDK span passes through on end, so these go the same way.
            processor.on_end(span)
            forwarded += 1
    return forwarded


def _readable(record: dict[str, Any], trace_id: str) -> ReadableSpan | None:
    try:
        if str(record.get("trace_id", "")).lower() != trace_id:
            return None  # a span claiming another trace is not the run's to show
        span_id = int(str(record["span_id"]), 16)
        parent_hex = record.get("parent_span_id")
        parent = int(str(parent_hex), 16) if parent_hex else None
        start, end = int(record.get("start_ns") or 0), int(record.get("end_ns") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    flags = TraceFlags(TraceFlags.SAMPLED)
    tid = int(trace_id, 16)
    given = list((record.get("attributes") or {}).items())[:MAX_ATTRIBUTES]
    attributes = {str(k)[:100]: _value(v) for k, v in given}
    attributes[SOURCE_ATTRIBUTE] = FROM_REPOSITORY
    service = str(record.get("service") or "repository-tests")[:100]
    return ReadableSpan(
        name=str(record.get("name") or "?")[:200],
        context=SpanContext(tid, span_id, is_remote=False, trace_flags=flags),
        parent=SpanContext(tid, parent, is_remote=True, trace_flags=flags) if parent else None,
        resource=Resource({"service.name": service, SOURCE_ATTRIBUTE: FROM_REPOSITORY}),
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        start_time=start or None,
        end_time=end or start or None,
        status=Status(StatusCode.ERROR if record.get("error") else StatusCode.UNSET),
    )


def _value(value: object) -> str | int | float | bool:
    if isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_VALUE_CHARS]
