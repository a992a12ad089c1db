"""One model turn through the Anthropic Messages API, and what its errors mean for retrying.

The client is built by the worker with max_retries=0: Temporal owns retries, so every attempt is
visible in the workflow's history, and backoff honours the API's retry-after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic

from agents.ledger import TokenCounts

SPEND_LIMIT_CODES = {
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
    "linked_organization_spend_limit_reached",
}
PERMANENT_STATUS = {400, 401, 402, 403, 404, 413, 422}


class ModelCallError(Exception):
    """A failed model call, classified: retry it (maybe after `retry_after_s`) or give up."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None,
        retry_after_s: float | None = None, kind: str = "ModelError",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.kind = kind


@dataclass(frozen=True)
class TurnResult:
    content: list[dict[str, Any]]
    """The assistant message's content blocks, as sent back on the next turn."""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, name, input as JSON) of each tool_use block."""
    stop_reason: str = ""
    text: str = ""
    model: str = ""
    counts: TokenCounts = field(default_factory=TokenCounts)


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


async def anthropic_turn(
    client: anthropic.AsyncAnthropic,
    *,
    model: str,
    max_tokens: int,
    temperature: float | None,
    system: str,
    tools: list[dict[str, Any]],
    messages: list[dict[str, Any]],
) -> TurnResult:
    # Cache breakpoints: the system prompt, the tool list (the last tool marks all of them), the
    # opening context and the newest message — so each turn reads the conversation from cache.
    options: dict[str, Any] = {}
    if tools:
        options["tools"] = [dict(t) for t in tools]
        options["tools"][-1]["cache_control"] = {"type": "ephemeral"}
    if temperature is not None:
        options["extra_body"] = {"temperature": temperature}
    try:
        message = await client.messages.create(
            model=model,
            max_tokens=max_tokens,
            system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            messages=messages,  # type: ignore[arg-type]
            **options,
        )
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
        content, calls, message.stop_reason or "", text, message.model, _counts(message.usage)
    )
