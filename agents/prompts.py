"""Versioned prompt files under agents/prompts/ (`<name>.v<version>.md`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from contracts.investigation import ReproductionCheck

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


def fix_goal(culprit: str | None, files: list[str], reproduce: str,
             written: ReproductionCheck | None) -> str:  # fmt: skip
    """The goal of an investigation's fix by a policy: undo what the culprit broke, or (no
    culprit) fix a latent bug; with a written reproduction, make it pass and keep it."""
    if culprit is None:
        goal = ("Fix the production error the new test reproduces; it fails at every commit of "
                "the history, so no commit introduced it.")  # fmt: skip
    else:
        goal = (
            f"Fix the regression introduced by commit {culprit[:12]} in "
            f"{', '.join(files) or 'the repository'}. The reproduction is `{reproduce}`; it "
            "fails at the current commit and passed before the culprit. Keep the culprit's "
            "intent where possible."
        )
    if written is None:
        return goal
    return (f"{goal} The new test {', '.join(written.files)} reproduces the production error "
            f"({written.detail}); make it pass without weakening it, and keep it.")  # fmt: skip
