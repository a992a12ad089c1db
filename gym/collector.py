"""A tiny OTLP/HTTP trace receiver that runs next to a repository's tests, inside the sandbox.

The sandbox has no network, so the collector shares its network namespace: it binds a free
loopback port, writes the port to a "ready" file, and appends one JSON line per received span
(name, trace id, span id, parent span id, service) to an output file. It is run as a standalone
script (copied into the run's results directory), so it needs nothing of Ratchet's own code.
"""

from __future__ import annotations

import json
import struct
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
    """An OTLP ExportTraceServiceRequest, decoded from the wire format with the stdlib alone: the
    collector runs on a bare interpreter, whatever the repository's environment holds."""
    out = []
    for resource_spans in _fields(body, 1):
        resource = next(iter(_fields(resource_spans, 1)), b"")
        attrs = dict(_attribute(kv) for kv in _fields(resource, 1))
        for scope in _fields(resource_spans, 2):
            for span in _fields(scope, 2):
                f = _message(span)
                status = _message(f.get(15, [b""])[0])
                out.append({
                    "name": _text(f, 5), "trace_id": _bytes(f, 1).hex(),
                    "span_id": _bytes(f, 2).hex(),
                    "parent_span_id": _bytes(f, 4).hex() or None,
                    "service": _service(attrs), "start_ns": _int(f, 7), "end_ns": _int(f, 8),
                    "error": _int(status, 3) == 2,
                    "attributes": dict(
                        _attribute(kv) for kv in f.get(9, []) if isinstance(kv, bytes)
                    ),
                })  # fmt: skip
    return out


Field = bytes | int


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _message(data: Field) -> dict[int, list[Field]]:
    """Field number → values (varints and fixed as ints, length-delimited as bytes)."""
    fields: dict[int, list[Field]] = {}
    if not isinstance(data, bytes):
        return fields
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: Field
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = int.from_bytes(data[at : at + 8], "little"), at + 8
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire == 5:
            value, at = int.from_bytes(data[at : at + 4], "little"), at + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _fields(data: Field, number: int) -> list[bytes]:
    return [v for v in _message(data).get(number, []) if isinstance(v, bytes)]


def _bytes(fields: dict[int, list[Field]], number: int) -> bytes:
    value = fields.get(number, [b""])[0]
    return value if isinstance(value, bytes) else b""


def _text(fields: dict[int, list[Field]], number: int) -> str:
    return _bytes(fields, number).decode(errors="replace")


def _int(fields: dict[int, list[Field]], number: int) -> int:
    value = fields.get(number, [0])[0]
    return value if isinstance(value, int) else 0


def _attribute(kv: bytes) -> tuple[str, Any]:
    """A KeyValue: key (1) and an AnyValue (2): string 1, bool 2, int 3, double 4."""
    f = _message(kv)
    value = _message(f.get(2, [b""])[0])
    if 1 in value:
        return _text(f, 1), _text(value, 1)
    if 2 in value:
        return _text(f, 1), bool(_int(value, 2))
    if 3 in value:
        number = _int(value, 3)
        return _text(f, 1), number - (1 << 64) if number >= 1 << 63 else number
    if 4 in value:
        return _text(f, 1), struct.unpack("<d", _int(value, 4).to_bytes(8, "little"))[0]
    return _text(f, 1), str(value)


def _json_value(value: dict[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if kind in value:
            return int(value[kind]) if kind == "intValue" else value[kind]
    return str(value)


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
