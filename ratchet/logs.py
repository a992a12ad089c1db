"""Structured logs: one JSON object per line, carrying the trace and run ids of the moment.

The run id comes from the activity being executed (its workflow id is the run id), or from a
span attribute set by the API; secrets are scrubbed from every message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from ratchet.scrub import Scrubber

RUN_ID_ATTRIBUTE = "ratchet.run_id"


def _run_id() -> str | None:
    from temporalio import activity

    if activity.in_activity():
        return activity.info().workflow_id
    span = trace.get_current_span()
    attributes = getattr(span, "attributes", None) or {}
    value = attributes.get(RUN_ID_ATTRIBUTE)
    return str(value) if value else None


class JsonFormatter(logging.Formatter):
    def __init__(self, scrubber: Scrubber, service: str) -> None:
        super().__init__()
        self.scrubber = scrubber
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": self.scrubber.text(record.getMessage()),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        run_id = getattr(record, "run_id", None) or _run_id()
        if run_id:
            line["run_id"] = run_id
        if record.exc_info:
            line["error"] = self.scrubber.text(self.formatException(record.exc_info))
        return json.dumps(line)


def configure_logging(scrubber: Scrubber, service: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(scrubber, service))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # The AWS SDK says at INFO where it found each client's endpoint: once per store client,
    # noise in every worker's log.
    for chatty in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
