"""Claude as the planner. (Patches come from the agent loop: one activity per model turn.)

The client is built by the worker with max_retries=0: Temporal owns retries, so every attempt
is visible in the workflow's history.
"""

from __future__ import annotations

from typing import Any

import anthropic

from agents.claude import TurnResult, anthropic_turn
from agents.planning import plan_by_model
from agents.policy import PlanAnswer, PlanRequest


class AnthropicPolicy:
    name = "anthropic"

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        max_tokens: int,
        temperature: float | None,
    ) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.label = f"anthropic ({model})"

    async def plan(self, request: PlanRequest) -> PlanAnswer:
        async def ask(system: str, messages: list[dict[str, Any]]) -> TurnResult:
            return await anthropic_turn(
                self.client, model=self.model, max_tokens=self.max_tokens,
                temperature=self.temperature, system=system, tools=[], messages=messages,
            )  # fmt: skip

        return await plan_by_model(request, ask, self.model)
