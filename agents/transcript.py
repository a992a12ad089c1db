"""A model conversation as data: opened from the task, grown by turns and tool results, stored as
an artifact between turns (workflows carry only its reference).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from agents.context import tracked_files

Message = dict[str, Any]
MAX_LISTED_FILES = 2000


def opening(
    *, role: str, goal: str, plan: str, feedback: str, workspace: Path, provider: str = "anthropic"
) -> list[Message]:
    files = tracked_files(workspace)
    listing = "\n".join(files[:MAX_LISTED_FILES])
    if len(files) > MAX_LISTED_FILES:
        listing += f"\n[... {len(files) - MAX_LISTED_FILES} more files]"
    # The stable part of the context comes first and is cached; the rest changes per round.
    context = (
        f"<goal>{escape(goal)}</goal>\n<plan>{escape(plan)}</plan>\n"
        f"<files>\n{escape(listing)}\n</files>"
    )
    ask = (
        "Refactor the change for clarity without changing behaviour; submit with no edits if "
        "nothing is worth changing."
        if role == "refactor"
        else "Make the change the goal describes, with tests, then submit."
    )
    if feedback:
        ask = (
            f"<feedback>{escape(feedback)}</feedback>\nThe last attempt failed verification. {ask}"
        )
    if provider != "anthropic":
        return [{"role": "user", "content": f"{context}\n\n{ask}"}]
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": context, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": ask},
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


def for_call(messages: list[Message]) -> list[Message]:
    """A copy with cache breakpoints on the opening context and on the newest block only."""
    out = copy.deepcopy(messages)
    for index, message in enumerate(out):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if isinstance(block, dict) and not (index == 0 and position == 0):
                block.pop("cache_control", None)
    last = out[-1].get("content") if out else None
    if isinstance(last, list) and last and isinstance(last[-1], dict):
        last[-1]["cache_control"] = {"type": "ephemeral"}
    return out


def dumps(messages: list[Message]) -> str:
    return json.dumps({"version": 1, "messages": messages})


def loads(text: str) -> list[Message]:
    data = json.loads(text)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        raise ValueError("not a Ratchet transcript")
    return messages
