"""Answers of an OpenAI-compatible chat server, for the same loopback fake server."""

from __future__ import annotations

import json
from typing import Any

from tests.utils.fake_anthropic import Answer

USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "prompt_tokens_details": {"cached_tokens": 20},
}


def chat(message: dict[str, Any], finish: str) -> Answer:
    return 200, {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "local-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def chat_text(text: str) -> Answer:
    return chat({"role": "assistant", "content": text}, "stop")


def chat_tool(name: str, args: dict[str, Any], call_id: str) -> Answer:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }
    return chat({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
