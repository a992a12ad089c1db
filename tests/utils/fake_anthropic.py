"""A fake Messages API on loopback: the real anthropic SDK talks HTTP to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.utils.loopback import serve_handler

Answer = tuple[Any, ...]
"""(status, body[, headers]): a dict body is sent as JSON, bytes as they are; status 0 drops
the connection."""
USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 50,
    "cache_read_input_tokens": 0,
}


def message(
    content: list[dict[str, Any]], stop: str, usage: dict[str, int] | None = None
) -> Answer:
    return 200, {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage or USAGE,
    }


def text_message(text: str, usage: dict[str, int] | None = None) -> Answer:
    return message([{"type": "text", "text": text}], "end_turn", usage)


def tool_use(
    name: str, args: dict[str, Any], *, call_id: str = "", usage: dict[str, int] | None = None
) -> Answer:
    block = {"type": "tool_use", "id": call_id or f"toolu_{name}", "name": name, "input": args}
    return message([block], "tool_use", usage)


def error(status: int, kind: str, text: str) -> Answer:
    return status, {"type": "error", "error": {"type": kind, "message": text}}


class FakeMessagesApi:
    """Answers POST /v1/messages from a list, in order, and records every request.

    Status 0 drops the connection in the middle of the answer.
    """

    def __init__(
        self, answers: list[Answer], headers: dict[str, str] | None = None, *,
        hold: dict[int, float] | None = None,
    ) -> None:  # fmt: skip
        self.answers = list(answers)
        self.headers = headers or {}
        self.requests: list[dict[str, Any]] = []
        self.hold = hold or {}
        """Request number (1-based) → seconds to keep it waiting, then answer 529 without using
        an answer: its caller is meant to be killed meanwhile (fault-injection tests)."""
        self.held = threading.Event()
        self.storm_until: float | None = None
        """Until this time.monotonic(), every request gets 529 Overloaded (a 529 storm)."""
        self._lock = threading.Lock()

    def _next(self, path: str, headers: dict[str, str], body: Any) -> Answer:
        with self._lock:
            self.requests.append(
                {"path": path, "headers": headers, "body": body, "at": time.monotonic()}
            )
            if self.storm_until is not None and time.monotonic() < self.storm_until:
                return error(529, "overloaded_error", "Overloaded (storm)")
            held = self.hold.get(len(self.requests))
        if held:
            self.held.set()
            time.sleep(held)
            return error(529, "overloaded_error", "Overloaded (held)")
        with self._lock:
            if self.answers:
                return self.answers.pop(0)
        return error(500, "api_error", "no answer scripted")

    @contextmanager
    def serve(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, *rest = fake._next(self.path, headers, body)
                extra = rest[0] if rest else {}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                if status == 0:
                    self.wfile.write(b'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"id"')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (fake.headers | extra).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        with serve_handler(Handler) as url:
            yield url
