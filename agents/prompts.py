"""Versioned prompt files under agents/prompts/ (`<name>.v<version>.md`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PROMPTS = Path(__file__).parent / "prompts"


@cache
def load_prompt(name: str, version: int = 1) -> str:
    text = (PROMPTS / f"{name}.v{version}.md").read_text()
    # The first line is a comment naming the prompt and its output schema, for people only.
    return text.split("\n", 1)[1] if text.startswith("<!--") else text
