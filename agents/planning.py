"""The planner's request: the repository first (a prefix every call on it shares and caches),
then the goal and what earlier runs learned, quoted as data."""

from __future__ import annotations

from pathlib import Path

from agents.context import repository_context
from agents.model import Message, ModelCall
from agents.prompts import goal_block, load_prompt


def repository_block(workspace: Path) -> dict[str, object]:
    """The repository's files as one cached block (the stable prefix of a request)."""
    text = f"<repository>\n{repository_context(workspace)}\n</repository>"
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


def plan_call(goal: str, workspace: Path, memory: str = "") -> ModelCall:
    ask = goal_block(goal, memory)
    message: Message = {
        "role": "user",
        "content": [repository_block(workspace), {"type": "text", "text": ask}],
    }
    return ModelCall("plan", load_prompt("plan"), [message], script_key="plan")
