"""Self-hosted models (vLLM, Ollama, llama.cpp server) through the OpenAI-compatible chat API.

Same tools, same loop, same ledger as Claude: only the wire format differs (the conversation
is kept in the canonical shape and converted for each call). Plain HTTP (httpx),
no retries of its own: Temporal owns them, as for Claude.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from agents.claude import PERMANENT_STATUS
from agents.ledger import TokenCounts
from agents.model import Message, ModelCall, ModelCallError, TurnResult
from agents.tools import TOOL_SPECS


def openai_tools(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": spec["name"],
                "description": spec["description"],
                "parameters": spec["input_schema"],
            },
        }
        for spec in specs
    ]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers["retry-after"]), 0.0)
    except (KeyError, ValueError):
        return None


def openai_messages(system: str, messages: list[Message]) -> list[Message]:
    """Canonical (Messages API) messages in the chat completions shape."""
    out: list[Message] = [{"role": "system", "content": system}]
    for message in messages:
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = "\n\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        if message.get("role") == "assistant":
            reply: Message = {"role": "assistant", "content": text}
            calls = [
                {"id": b["id"], "type": "function",
                 "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))}}
                for b in blocks if b.get("type") == "tool_use"
            ]  # fmt: skip
            if calls:
                reply["tool_calls"] = calls
            out.append(reply)
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                prefix = "ERROR: " if b.get("is_error") else ""
                out.append({"role": "tool", "tool_call_id": b["tool_use_id"],
                            "content": prefix + str(b.get("content", ""))})  # fmt: skip
        if text:
            out.append({"role": "user", "content": text})
    return out


class OpenAICompatModel:
    provider = "openai-compatible"

    def __init__(self, http: httpx.AsyncClient, *, model: str, max_tokens: int) -> None:
        """`http` has the server's base URL (…/v1) and, when one is set, its API key."""
        self.http = http
        self.model = model
        self.max_tokens = max_tokens
        self.label = f"openai-compatible ({model})"

    def model_for(self, purpose: str) -> str:
        return self.model

    def limit_for(self, purpose: str) -> tuple[int, int]:
        return self.max_tokens, max(self.max_tokens, 4 * self.max_tokens)

    async def turn(self, call: ModelCall) -> TurnResult:
        max_tokens = call.max_tokens or self.max_tokens
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": openai_messages(call.system, call.messages),
        }
        if call.tools:
            body["tools"] = openai_tools(TOOL_SPECS)
        return await _post(self.http, body, max_tokens)


async def _post(http: httpx.AsyncClient, body: dict[str, Any], max_tokens: int) -> TurnResult:
    model = str(body["model"])
    try:
        response = await http.post("chat/completions", json=body)
    except httpx.HTTPError as err:
        raise ModelCallError(f"cannot reach the model server: {err}", retryable=True,
                             kind="ModelUnreachable") from err  # fmt: skip
    if response.status_code >= 400:
        message = f"model server {response.status_code}: {response.text[:500]}"
        permanent = response.status_code in PERMANENT_STATUS
        raise ModelCallError(
            message, retryable=not permanent, status=response.status_code,
            retry_after_s=_retry_after(response),
            kind="ModelRequestRejected" if permanent else "ModelServerError",
        )  # fmt: skip
    try:
        data = response.json()
        choice = data["choices"][0]
        assistant = choice["message"]
        calls = [
            (c["id"], c["function"]["name"], _arguments(c["function"].get("arguments")))
            for c in assistant.get("tool_calls") or []
        ]
        usage = data.get("usage") or {}
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        counts = TokenCounts(
            input_tokens=int(usage.get("prompt_tokens") or 0) - cached,
            output_tokens=int(usage.get("completion_tokens") or 0),
            cache_read_input_tokens=cached,
        )
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise ModelCallError(f"the model server's answer could not be read: {err}",
                             retryable=False, kind="ModelAnswerUnreadable") from err  # fmt: skip
    text = str(assistant.get("content") or "")
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": i, "name": n, "input": json.loads(j)} for i, n, j in calls
    ]
    finish = str(choice.get("finish_reason") or "")
    return TurnResult(
        content=content,
        tool_calls=calls,
        stop_reason={"length": "max_tokens", "tool_calls": "tool_use"}.get(finish, finish),
        text=text,
        model=str(data.get("model") or model),
        counts=counts,
        max_tokens=max_tokens,
    )


def _arguments(value: object) -> str:
    """Tool arguments as JSON text (servers send a string; a few send an object)."""
    if isinstance(value, dict):
        return json.dumps(value)
    try:
        return json.dumps(json.loads(str(value or "{}")))
    except ValueError:
        return "{}"
