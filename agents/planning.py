"""A plan from a model in one call, whichever API serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape

from agents.claude import ModelCallError, TurnResult
from agents.context import repository_context
from agents.policy import PlanAnswer, PlanRequest, PolicyError
from agents.prompts import load_prompt

Ask = Callable[[str, list[dict[str, Any]]], Awaitable[TurnResult]]


async def plan_by_model(request: PlanRequest, ask: Ask, model: str) -> PlanAnswer:
    """`ask(system, messages)` makes the one model call; permanent errors become PolicyError."""
    content = (
        f"<goal>{escape(request.goal)}</goal>\n\n"
        f"<repository>\n{repository_context(request.workspace)}\n</repository>"
    )
    if request.memory:
        content += f"\n<memory>\n{escape(request.memory)}\n</memory>"
    try:
        turn = await ask(load_prompt("plan"), [{"role": "user", "content": content}])
    except ModelCallError as err:
        if not err.retryable:
            raise PolicyError(str(err)) from err
        raise
    if not turn.text.strip():
        raise PolicyError(f"the model returned no plan (stop_reason={turn.stop_reason})")
    return PlanAnswer(turn.text, turn.model or model, turn.counts)
