"""A tiny OTLP/HTTP trace receiver that runs next to a repository's tests, inside the sandbox.

The sandbox has no network, so the collector shares its network namespace: it binds a free
loopback port, writes the port to a "ready" file, and appends one JSON line per received span
(name, trace id, span id, parent span id, service) to an output file. It is run as a standalone
script (copied into the run's results directory), so it needs nothing of Ratchet's own code.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 16 * 2**20


def spans_from_json(body: bytes) -> list[dict[str, Any]]:
    data = json.loads(body)
    out = []
    for resource_spans in data.get("resourceSpans", []):
        service = _service(
            {a.get("key"): a.get("value", {}).get("stringValue") for a in
             resource_spans.get("resource", {}).get("attributes", [])}
        )  # fmt: skip
        for scope in resource_spans.get("scopeSpans", []):
            for span in scope.get("spans", []):
                out.append({
                    "name": span.get("name"), "trace_id": span.get("traceId"),
                    "span_id": span.get("spanId"), "parent_span_id": span.get("parentSpanId"),
                    "service": service, "start_ns": span.get("startTimeUnixNano"),
                    "end_ns": span.get("endTimeUnixNano"),
                    "error": (span.get("status") or {}).get("code") in (2, "STATUS_CODE_ERROR"),
                    "attributes": {a.get("key"): _json_value(a.get("value") or {})
                                   for a in span.get("attributes", [])},
                })  # fmt: skip
    return out


def spans_from_protobuf(body: bytes) -> list[dict[str, Any]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                out.append({
                    "name": span.name, "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "service": _service(attrs), "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano, "error": span.status.code == 2,
                    "attributes": {a.key: _proto_value(a.value) for a in span.attributes},
                })  # fmt: skip
    return out


def _json_value(value: dict[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if kind in value:
            return int(value[kind]) if kind == "intValue" else value[kind]
    return str(value)


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "bool_value", "int_value",
                                            "double_value") else str(value)  # fmt: skip


def _service(attributes: dict[str, Any]) -> str | None:
    value = attributes.get("service.name")
    return str(value) if value else None


def serve(ready: Path, out: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if not self.path.endswith("/v1/traces") or length > MAX_BODY:
                self.send_response(404 if length <= MAX_BODY else 413)
                self.end_headers()
                return
            body = self.rfile.read(length)
            try:
                if "json" in (self.headers.get("content-type") or ""):
                    spans = spans_from_json(body)
                else:
                    spans = spans_from_protobuf(body)
            except Exception:  # a malformed export is the test's problem, never the collector's
                self.send_response(400)
                self.end_headers()
                return
            with out.open("a") as sink:
                sink.writelines(json.dumps(s) + "\n" for s in spans)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]))
