"""A fake Messages API on loopback: the real anthropic SDK talks HTTP to it.

It is as strict as the real API: a request the real API would refuse gets the real API's 400
(or 404 for an unknown model) and uses no scripted answer. Every 200 answer is billed, and
opt-in, prompt caching is simulated so that the usage answered is what a real run would cost.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from itertools import takewhile
from typing import Any, get_args

import anthropic.types

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
TOKEN_FIELDS = tuple(USAGE)


def _version(model: str) -> tuple[float, float]:
    """(major, minor) of a model family, e.g. (4, 5) for claude-opus-4-5-20251101; a model
    without one (claude-fake, claude-mythos-preview) counts as the newest."""
    found = re.fullmatch(r"claude-[a-z]+-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?", model)
    if not found:
        return math.inf, math.inf
    return int(found[1]), int(found[2] or 0)


KNOWN_MODELS: frozenset[str] = frozenset(
    {*get_args(get_args(anthropic.types.Model)[0])}
    | {"claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-opus-4-1", "claude-fake"}
)
"""The SDK's model ids and a few older ones; claude-fake behaves like a current model."""
NO_PREFILL = frozenset(m for m in KNOWN_MODELS if _version(m) >= (4, 6))
NO_TEMPERATURE = frozenset(
    m for m in KNOWN_MODELS if _version(m) >= (4, 7) or m.split("-")[1] in ("fable", "mythos")
)
CLIENT_TOOLS = {
    "bash_20250124": "bash",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "text_editor_20250124": "str_replace_editor",
}
"""Anthropic-defined client tools, sent without a schema: type → the name it must have."""
MAX_CACHE_BLOCKS = 4
ID = re.compile(r"[a-zA-Z0-9_-]+")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
NO_PREFILL_MESSAGE = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)


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


# --- What the real API refuses -------------------------------------------------------------


def _blocks(content: Any) -> list[Any]:
    """A message's content as blocks: a string is one text block, "" none."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content if isinstance(content, list) else []


def _check_scalars(body: dict[str, Any], models: Collection[str]) -> str | None:
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if model not in models:
        return f"model: {model}"  # the one 404
    temperature = body.get("temperature")
    if temperature is None:
        return None
    if model in NO_TEMPERATURE:
        return "`temperature` is deprecated for this model."
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        return "temperature: Input should be a valid number"
    if not 0 <= temperature <= 1:
        side = "greater than or equal to 0" if temperature < 0 else "less than or equal to 1"
        return f"temperature: Input should be {side}"
    return None


def _check_tools(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        return "tools: Input should be a valid list"
    names: set[Any] = set()
    for n, tool in enumerate(tools):
        kind, name = tool.get("type") or "custom", tool.get("name")
        if kind == "custom":
            if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
                return f"tools.{n}.custom.name: String should match pattern '^{TOOL_NAME.pattern}$'"
            schema = tool.get("input_schema")
            if schema is None:
                return f"tools.{n}.custom.input_schema: Field required"
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{n}.custom.input_schema.type: Input should be 'object'"
        elif kind in CLIENT_TOOLS:
            if name != CLIENT_TOOLS[kind]:
                return f"tools.{n}.{kind}.name: Input should be '{CLIENT_TOOLS[kind]}'"
            if "input_schema" in tool:
                return f"tools.{n}.{kind}.input_schema: Extra inputs are not permitted"
        else:
            return (
                f"tools.{n}: Input tag '{kind}' found using 'type' does not match any of the "
                "expected tags"
            )
        if name in names:
            return "tools: Tool names must be unique."
        names.add(name)
    return None


def _check_system(system: Any) -> str | None:
    if isinstance(system, list):
        for block in system:
            if not isinstance(block, dict) or block.get("type") != "text":
                return "system: Input should be a valid list of text blocks"
            if not block.get("text"):
                return "system: text content blocks must be non-empty"
    return None


def _check_block(n: int, m: int, block: dict[str, Any]) -> str | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            return "messages: text content blocks must be non-empty"
        if not text.strip():
            return "messages: text content blocks must contain non-whitespace text"
    key = {"tool_use": "id", "tool_result": "tool_use_id"}.get(str(kind))
    if key and not (isinstance(block.get(key), str) and ID.fullmatch(block[key])):
        return (
            f"messages.{n}.content.{m}.{kind}.{key}: String should match pattern '^{ID.pattern}$'"
        )
    return None


def _check_messages(messages: Any, prefill: bool) -> str | None:
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for n, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{n}.role: Input should be 'user' or 'assistant'"
        if not isinstance(msg.get("content"), str | list):
            return f"messages.{n}.content: Input should be a valid list"
        if not all(isinstance(b, dict) for b in _blocks(msg["content"])):
            return f"messages.{n}.content: Input should be a valid list of content blocks"
    if messages[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    final = messages[-1]
    if final["role"] == "assistant" and not prefill:
        return NO_PREFILL_MESSAGE
    for n, msg in enumerate(messages):
        blocks = _blocks(msg["content"])
        if not blocks and (msg is not final or msg["role"] != "assistant"):
            return (
                f"messages.{n}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        for m, block in enumerate(blocks):
            if refusal := _check_block(n, m, block):
                return refusal
    text = str((_blocks(final["content"]) or [{}])[-1].get("text", ""))
    if final["role"] == "assistant" and text != text.rstrip():
        return "messages: final assistant content cannot end with trailing whitespace"
    return _check_tool_pairing(messages)


def _check_tool_pairing(messages: list[dict[str, Any]]) -> str | None:
    """Each tool_use is answered by a tool_result with its id, first thing in the next message
    (which is the user's); and each tool_result answers a tool_use of the message before."""
    uses: list[str] = []  # the tool_use ids of the message before
    for n, msg in enumerate([*messages, {"role": "user", "content": []}]):
        blocks = _blocks(msg["content"]) if msg["role"] == "user" else []
        leading = takewhile(lambda b: b.get("type") == "tool_result", blocks)
        answered = {b["tool_use_id"] for b in leading}
        if missing := [i for i in uses if i not in answered]:
            return (
                f"messages.{n - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        for m, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block["tool_use_id"] not in uses:
                return (
                    f"messages.{n}.content.{m}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        uses = [b["id"] for b in _blocks(msg["content"]) if b.get("type") == "tool_use"]
        uses = uses if msg["role"] == "assistant" else []
    return None


def _prompt(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt's blocks in the order the cache reads them: tools, system, messages."""
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}] if system else []
    return [
        *({"tool": t} for t in body.get("tools") or []),
        *({"system": b} for b in system or []),
        *({m["role"]: b} for m in body["messages"] for b in _blocks(m["content"])),
    ]


def _cache_marked(item: dict[str, Any]) -> bool:
    (block,) = item.values()
    return "cache_control" in block


def check_request(body: Any, models: Collection[str] = KNOWN_MODELS) -> str | None:
    """Why the real Messages API would refuse `body` (its error message), or None."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    refusal = (
        _check_scalars(body, models)
        or _check_tools(body.get("tools"))
        or _check_system(body.get("system"))
        or _check_messages(body.get("messages"), body["model"] not in NO_PREFILL)
    )
    if refusal:
        return refusal
    found = sum(map(_cache_marked, _prompt(body)))
    if found > MAX_CACHE_BLOCKS:
        return (
            f"A maximum of {MAX_CACHE_BLOCKS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return None


def refusal_answer(body: Any, refusal: str) -> Answer:
    model = body.get("model") if isinstance(body, dict) else None
    if refusal == f"model: {model}":
        return error(404, "not_found_error", refusal)
    return error(400, "invalid_request_error", refusal)


# --- What the real API bills ------------------------------------------------------------------


@dataclass
class Bill:
    """Running totals of the usage of every 200 answer to a Messages call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    calls: int = 0

    def add(self, usage: dict[str, Any]) -> None:
        self.calls += 1
        for name in TOKEN_FIELDS:
            setattr(self, name, getattr(self, name) + int(usage.get(name) or 0))


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class PromptCache:
    """Prompt caching as the API does it: each cache_control breakpoint ends a cacheable prefix
    (if long enough); a request reads the longest prefix written before and writes the rest up
    to its last breakpoint. The real cache forgets an entry 5 minutes after its last use (the
    default "ephemeral" TTL); tests are shorter than that, so entries here never expire."""

    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self.entries: set[tuple[str, str]] = set()
        """(model, the prefix as JSON): a cache is per model, and cache_control is no part of
        what it matches."""

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        prompt = _prompt(body)
        items = [json.dumps(_without_cache_control(item), sort_keys=True) for item in prompt]

        def prefix(k: int) -> str:
            return ",".join(items[:k])

        def size(k: int) -> int:
            return estimate_tokens(prefix(k)) if k else 0

        model = str(body["model"])
        marks = [k + 1 for k, item in enumerate(prompt) if _cache_marked(item)]
        last = marks[-1] if marks else 0
        read = next((k for k in range(last, 0, -1) if (model, prefix(k)) in self.entries), 0)
        written = 0
        if last and size(last) >= self.min_tokens:
            written = size(last) - size(read)
            self.entries |= {(model, prefix(k)) for k in marks if size(k) >= self.min_tokens}
        return {
            "input_tokens": size(len(items)) - size(read) - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": size(read),
        }


def _without_cache_control(item: dict[str, Any]) -> dict[str, Any]:
    return {role: {k: v for k, v in block.items() if k != "cache_control"}
            for role, block in item.items()}  # fmt: skip


def _scripted_usage(payload: Any) -> dict[str, Any]:
    if isinstance(payload, bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            return {}
    usage = payload.get("usage") if isinstance(payload, dict) else None
    return usage if isinstance(usage, dict) else {}


# --- The server -------------------------------------------------------------------------------


class FakeMessagesApi:
    """Answers POST /v1/messages from a list, in order, and records every request.

    Status 0 drops the connection in the middle of the answer. A Messages request the real API
    would refuse is answered with its error instead, and recorded in `refused`. Other paths
    (the OpenAI-compatible fake rides on this server) are answered as scripted, unchecked and
    unbilled.
    """

    def __init__(
        self, answers: list[Answer], headers: dict[str, str] | None = None, *,
        hold: dict[int, float] | None = None, models: set[str] | None = None,
        simulate_cache: bool = False, min_cache_tokens: int = 1024,
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
        self.models: Collection[str] = KNOWN_MODELS if models is None else models
        self.refused: list[dict[str, Any]] = []
        """{"body", "status", "message"} of each request refused as the real API would."""
        self.billed = Bill()
        self.bills: list[tuple[dict[str, Any], dict[str, int]]] = []
        """(request body, usage billed) of each billed answer, in order."""
        self.simulate_cache = simulate_cache
        """Answer the usage a real prompt cache would, instead of the scripted one."""
        self.cache = PromptCache(min_cache_tokens)
        self._lock = threading.Lock()

    def _next(self, path: str, headers: dict[str, str], body: Any) -> Answer:
        is_messages = path.partition("?")[0] == "/v1/messages"
        with self._lock:
            self.requests.append(
                {"path": path, "headers": headers, "body": body, "at": time.monotonic()}
            )
            if is_messages and (refusal := check_request(body, self.models)):
                answer = refusal_answer(body, refusal)
                self.refused.append({"body": body, "status": answer[0], "message": refusal})
                return answer
            if self.storm_until is not None and time.monotonic() < self.storm_until:
                return error(529, "overloaded_error", "Overloaded (storm)")
            held = self.hold.get(len(self.requests))
        if held:
            self.held.set()
            time.sleep(held)
            return error(529, "overloaded_error", "Overloaded (held)")
        with self._lock:
            if not self.answers:
                return error(500, "api_error", "no answer scripted")
            answer = self.answers.pop(0)
            return self._bill(body, answer) if is_messages and answer[0] == 200 else answer

    def _bill(self, body: dict[str, Any], answer: Answer) -> Answer:
        status, payload, *rest = answer
        usage = _scripted_usage(payload)
        if self.simulate_cache:
            content = payload.get("content", []) if isinstance(payload, dict) else []
            output = usage.get("output_tokens", estimate_tokens(json.dumps(content)))
            usage = self.cache.usage(body) | {"output_tokens": output}
            if isinstance(payload, dict):
                payload = payload | {"usage": usage, "model": body["model"]}
        self.billed.add(usage)
        self.bills.append((body, usage))
        return (status, payload, *rest)

    @contextmanager
    def serve(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

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
                if status == 200 and isinstance(payload, dict) and body.get("stream") is True:
                    data = sse(payload)  # a streamed request gets the answer as events
                    content_type = "text/event-stream"
                else:
                    content_type = "application/json"
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for key, value in (fake.headers | extra).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        with serve_handler(Handler) as url:
            yield url


def sse(answer: dict[str, Any]) -> bytes:
    """A message as the Messages API streams it: message_start, each block's start, delta and
    stop, then message_delta (stop reason, output tokens) and message_stop."""
    usage = dict(answer.get("usage") or USAGE)
    start = {**answer, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 0}}  # fmt: skip
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    for index, block in enumerate(answer.get("content") or []):
        if block.get("type") == "tool_use":
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opening = {**block, "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        events += [
            ("content_block_start", {"index": index, "content_block": opening}),
            ("content_block_delta", {"index": index, "delta": delta}),
            ("content_block_stop", {"index": index}),
        ]
    events += [
        ("message_delta", {"delta": {"stop_reason": answer.get("stop_reason"),
                                     "stop_sequence": None},
                           "usage": {"output_tokens": usage.get("output_tokens", 0)}}),
        ("message_stop", {}),
    ]  # fmt: skip
    return b"".join(
        f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
        for name, data in events
    )
