"""A model conversation as data: opened from the task, grown by turns and tool results, stored as
an artifact between turns (workflows carry only its reference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from agents.context import repository_context, tracked_files
from agents.prompts import goal_block

Message = dict[str, Any]
MAX_LISTED_FILES = 2000
ASKS = {
    "code": "Make the change the goal describes, with tests, then submit.",
    "refactor": "Refactor the change for clarity without changing behaviour; submit with no "
    "edits if nothing is worth changing.",
    "reproduce": "Write ONE new test file under tests/ (named test_*.py) that reproduces the "
    "production error in <event>: at this commit it must fail with the same exception type, "
    "raised from the same function of the same file as the event's innermost in-app frame. "
    "Change no other file and do not fix the bug. Run the test (run_tests with select, or bash) "
    "to see it fail that way, then submit.",
}
AGENT_CONTEXT_CHARS = 40_000
"""Repository content in the agent's opening (about 10K tokens at most); the rest it reads
with its tools."""


def opening(*, role: str, goal: str, plan: str, feedback: str, workspace: Path) -> list[Message]:
    """The first message, in the canonical shape every provider is given (converted per call).

    The repository comes first and is marked for the cache — its file list and the content of
    its smaller files, within AGENT_CONTEXT_CHARS — so the stable prefix (tools, system prompt,
    repository) is long enough to be cached and every later turn reads it; the goal, the plan
    and feedback follow."""
    files = tracked_files(workspace)
    listing = "\n".join(files[:MAX_LISTED_FILES])
    if len(files) > MAX_LISTED_FILES:
        listing += f"\n[... {len(files) - MAX_LISTED_FILES} more files]"
    ask = ASKS.get(role, ASKS["code"])
    if feedback:
        ask = (
            f"<feedback>{escape(feedback)}</feedback>\nThe last attempt failed verification. {ask}"
        )
    # For the reproducer the "plan" is the production error's event: data, never orders.
    evidence = "event" if role == "reproduce" else "plan"
    task = f"{goal_block(goal)}\n<{evidence}>{escape(plan)}</{evidence}>\n\n{ask}"
    return [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": f"<files>\n{escape(listing)}\n</files>\n<repository>\n"
                    f"{repository_context(workspace, AGENT_CONTEXT_CHARS)}\n</repository>",
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": task},
            ],
        }
    ]


def with_tool_results(
    messages: list[Message], results: list[tuple[str, str, bool]]
) -> list[Message]:
    if not results:
        return messages
    blocks = [
        {"type": "tool_result", "tool_use_id": use_id, "content": content, "is_error": is_error}
        for use_id, content, is_error in results
    ]
    return [*messages, {"role": "user", "content": blocks}]


def dumps(messages: list[Message]) -> str:
    return json.dumps({"version": 1, "messages": messages})


def loads(text: str) -> list[Message]:
    data = json.loads(text)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        raise ValueError("not a Ratchet transcript")
    return messages


def turns(messages: list[Message], result_chars: int = 2000) -> list[dict[str, Any]]:
    """The conversation turn by turn, for people: each model turn's text and tool calls, with
    the result each call got (its head and tail, `result_chars` in all; 0 for all of it)."""
    results: dict[str, tuple[str, bool]] = {}
    for message in messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                body = block.get("content")
                text = body if isinstance(body, str) else json.dumps(body)
                results[str(block.get("tool_use_id"))] = (text, bool(block.get("is_error")))
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        calls = []
        for block in content:
            if block.get("type") != "tool_use":
                continue
            result, error = results.get(str(block.get("id")), ("", False))
            calls.append({"tool": block.get("name"), "input": block.get("input"),
                          "result": _cut(result, result_chars), "is_error": error})  # fmt: skip
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        out.append({"turn": len(out) + 1, "text": text, "calls": calls})
    return out


def _cut(text: str, limit: int) -> str:
    if not limit or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters ...]\n{text[-half:]}"
