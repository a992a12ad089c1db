"""Claude through the Anthropic Messages API: one turn, its cache breakpoints, its errors.

The client is built by the worker with max_retries=0: Temporal owns retries, so every attempt is
visible in the workflow's history, and backoff honours the API's retry-after.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import anthropic

from agents.claude_tools import CLAUDE_TOOLS
from agents.ledger import TokenCounts
from agents.model import Message, ModelCall, ModelCallError, TurnResult

SPEND_LIMIT_CODES = {
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
    "linked_organization_spend_limit_reached",
}
PERMANENT_STATUS = {400, 401, 402, 403, 404, 413, 422}
# The SDK refuses a request it expects to run past 10 minutes unless it streams: it expects an
# hour per 128,000 output tokens (anthropic._base_client._calculate_nonstreaming_timeout).
STREAM_ABOVE_TOKENS = 21_333
MAX_BREAKPOINTS = 4
AGENTIC = {"code", "refactor", "reproduce"}
"""Purposes that work through tools: without settings of their own, they take "code"'s."""
# Models released after Claude Opus 4.6 refuse a sampling temperature ("`temperature` is
# deprecated for this model"); Opus/Sonnet 4.6, Haiku 4.5 and older take one. Ids that are not
# Claude's (a gateway's own names) are sent what is configured.
_TAKES_TEMPERATURE = re.compile(
    r"^claude-(3|instant|2)|^claude-(opus|sonnet|haiku)-4(-[0-6])?(-\d{8})?$|"
    r"^claude-(opus|sonnet)-4-[0-6]-|^claude-haiku-4-5"
)
_REFUSES_TEMPERATURE = re.compile(r"^claude-")


@dataclass(frozen=True)
class ModelSettings:
    model: str
    max_tokens: int
    temperature: float | None = None


def takes_temperature(model: str) -> bool:
    return bool(_TAKES_TEMPERATURE.search(model)) or not _REFUSES_TEMPERATURE.search(model)


def _retry_after(err: anthropic.APIStatusError) -> float | None:
    value = err.response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _error_code(err: anthropic.APIStatusError) -> str:
    def part(value: object, key: str) -> dict[str, Any]:
        inner = value.get(key) if isinstance(value, dict) else None
        return inner if isinstance(inner, dict) else {}

    error = part(err.body, "error")
    return str(part(error, "details").get("error_code") or error.get("type") or "")


def classify(err: Exception) -> ModelCallError:
    if isinstance(err, anthropic.APIConnectionError):  # includes timeouts and dropped streams
        return ModelCallError(
            f"cannot reach the model API: {err}", retryable=True, kind="ModelUnreachable"
        )
    if isinstance(err, anthropic.APIStatusError):
        status, message = err.status_code, f"Anthropic API {err.status_code}: {err.message}"
        code = _error_code(err)
        if status == 429 and (code in SPEND_LIMIT_CODES or "spend limit" in message.lower()):
            return ModelCallError(message, retryable=False, status=status, kind="ModelSpendLimit")
        if status in PERMANENT_STATUS:
            return ModelCallError(
                message, retryable=False, status=status, kind="ModelRequestRejected"
            )
        kind = {429: "ModelRateLimited", 529: "ModelOverloaded"}.get(status, "ModelServerError")
        return ModelCallError(
            message, retryable=True, status=status, retry_after_s=_retry_after(err), kind=kind
        )
    return ModelCallError(f"unexpected model error: {err}", retryable=True)


def _counts(usage: Any) -> TokenCounts:
    return TokenCounts(
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        cache_creation_input_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        cache_read_input_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
    )


def with_breakpoints(messages: list[Message]) -> list[Message]:
    """A copy whose cache breakpoints are where they pay: the blocks the conversation's builder
    marked in its first message (the stable prefix: tools, system and repository context are
    all before them), then the newest block and the one before the newest turn, so each turn
    reads the whole conversation so far from cache. Never more than the API's four."""
    out = copy.deepcopy(messages)
    kept = 0
    for index, message in enumerate(out):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict) or "cache_control" not in block:
                continue
            if index == 0 and kept < 2:
                kept += 1
            else:
                block.pop("cache_control")
    marks = [len(out) - 1, len(out) - 3]  # the newest message, and the one a turn earlier
    for index in marks:
        if index < 1 or kept >= MAX_BREAKPOINTS:
            continue
        content = out[index].get("content")
        if isinstance(content, str) and content:
            out[index]["content"] = content = [{"type": "text", "text": content}]
        if isinstance(content, list) and content and isinstance(content[-1], dict):
            content[-1]["cache_control"] = {"type": "ephemeral"}
            kept += 1
    return out


def request_body(call: ModelCall, settings: ModelSettings, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": settings.model,
        "max_tokens": max_tokens,
        "system": [{"type": "text", "text": call.system}],
        "messages": with_breakpoints(call.messages),
    }
    if call.tools:
        body["tools"] = [dict(t) for t in CLAUDE_TOOLS]
    if settings.temperature is not None and takes_temperature(settings.model):
        # The SDK's create() has no temperature argument any more: older models still take it.
        body["extra_body"] = {"temperature": settings.temperature}
    return body


class AnthropicModel:
    provider = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic, roles: dict[str, ModelSettings]) -> None:
        """`roles`: settings by purpose; "code" is required, "plan" serves every role."""
        self.client = client
        self.roles = roles
        self.label = f"anthropic ({roles['code'].model})"

    def settings_for(self, purpose: str) -> ModelSettings:
        if purpose in self.roles:
            return self.roles[purpose]
        if purpose in AGENTIC:
            return self.roles["code"]
        return self.roles.get("plan") or self.roles["code"]

    def model_for(self, purpose: str) -> str:
        return self.settings_for(purpose).model

    def limit_for(self, purpose: str) -> tuple[int, int]:
        # A cut-off answer is asked again with more room, but without streaming unless the
        # configured limit already streams (one request shape fewer to go wrong).
        limit = self.settings_for(purpose).max_tokens
        return limit, max(limit, STREAM_ABOVE_TOKENS)

    async def turn(self, call: ModelCall) -> TurnResult:
        settings = self.settings_for(call.purpose)
        max_tokens = call.max_tokens or settings.max_tokens
        body = request_body(call, settings, max_tokens)
        try:
            if max_tokens > STREAM_ABOVE_TOKENS:  # the SDK refuses to wait that long unstreamed
                async with self.client.messages.stream(**body) as stream:
                    message = await stream.get_final_message()
            else:
                message = await self.client.messages.create(**body)
        except anthropic.APIResponseValidationError as err:
            raise ModelCallError(
                f"the model API's answer did not match its schema: {err}",
                retryable=False, kind="ModelAnswerUnreadable",
            ) from err  # fmt: skip
        except (anthropic.APIError, anthropic.APIConnectionError) as err:
            raise classify(err) from err
        except ValueError as err:  # a body that is not JSON at all
            raise ModelCallError(
                f"the model API's answer could not be read: {err}",
                retryable=False, kind="ModelAnswerUnreadable",
            ) from err  # fmt: skip
        try:
            content = [block.model_dump(exclude_none=True) for block in message.content]
            calls = [
                (block.id, block.name, json.dumps(block.input))
                for block in message.content
                if block.type == "tool_use"
            ]
            text = "".join(block.text for block in message.content if block.type == "text")
        except (AttributeError, TypeError, ValueError) as err:
            raise ModelCallError(
                f"the model's answer could not be read: {err}",
                retryable=False,
                kind="ModelAnswerUnreadable",
            ) from err
        return TurnResult(
            content, calls, message.stop_reason or "", text, message.model or settings.model,
            _counts(message.usage), max_tokens,
        )  # fmt: skip
