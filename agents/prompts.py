"""Versioned prompt files under agents/prompts/ (`<name>.v<version>.md`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

PROMPTS = Path(__file__).parent / "prompts"


@cache
def load_prompt(name: str, version: int = 1) -> str:
    text = (PROMPTS / f"{name}.v{version}.md").read_text()
    # The first line is a comment naming the prompt and its output schema, for people only.
    return text.split("\n", 1)[1] if text.startswith("<!--") else text


def goal_block(goal: str, memory: str = "") -> str:
    """The task's goal as every prompt opens with it (the plan, the agent's first turn, each
    role), with what earlier runs learned when there is any. Both are data, escaped so they
    cannot close their tag or open another."""
    block = f"<goal>{escape(goal)}</goal>"
    return block + (f"\n<memory>\n{escape(memory)}\n</memory>" if memory else "")
