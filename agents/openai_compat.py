"""Self-hosted models (vLLM, Ollama, llama.cpp server) through the OpenAI-compatible chat API.

Same tools, same loop, same ledger as Claude: only the wire format differs. Plain HTTP (httpx),
no retries of its own: Temporal owns them, as for Claude.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from agents.claude import PERMANENT_STATUS, ModelCallError, TurnResult
from agents.ledger import TokenCounts
from agents.planning import plan_by_model
from agents.policy import PlanAnswer, PlanRequest

Message = dict[str, Any]


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


async def openai_turn(
    http: httpx.AsyncClient,
    *,
    model: str,
    max_tokens: int,
    temperature: float | None,
    system: str,
    tools: list[dict[str, Any]],
    messages: list[Message],
) -> TurnResult:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "system", "content": system}, *messages],
    }
    if tools:
        body["tools"] = openai_tools(tools)
    if temperature is not None:
        body["temperature"] = temperature
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
    reply = {"role": "assistant", "content": assistant.get("content") or ""}
    if assistant.get("tool_calls"):
        reply["tool_calls"] = assistant["tool_calls"]
    return TurnResult(
        content=[reply],
        tool_calls=calls,
        stop_reason=str(choice.get("finish_reason") or ""),
        text=str(assistant.get("content") or ""),
        model=str(data.get("model") or model),
        counts=counts,
    )


def with_tool_results(
    messages: list[Message], results: list[tuple[str, str, bool]]
) -> list[Message]:
    tool_messages = [
        {"role": "tool", "tool_call_id": use_id, "content": ("ERROR: " if error else "") + text}
        for use_id, text, error in results
    ]
    return [*messages, *tool_messages]


class OpenAICompatPolicy:
    name = "openai-compatible"

    def __init__(self, http: httpx.AsyncClient, *, model: str, max_tokens: int) -> None:
        self.http = http
        self.model = model
        self.max_tokens = max_tokens
        self.label = f"openai-compatible ({model})"

    async def plan(self, request: PlanRequest) -> PlanAnswer:
        async def ask(system: str, messages: list[dict[str, Any]]) -> TurnResult:
            return await openai_turn(
                self.http, model=self.model, max_tokens=self.max_tokens, temperature=None,
                system=system, tools=[], messages=messages,
            )  # fmt: skip

        return await plan_by_model(request, ask, self.model)


def _arguments(value: object) -> str:
    """Tool arguments as JSON text (servers send a string; a few send an object)."""
    if isinstance(value, dict):
        return json.dumps(value)
    try:
        return json.dumps(json.loads(str(value or "{}")))
    except ValueError:
        return "{}"
