"""Claude as the planner. (Patches come from the agent loop: one activity per model turn.)

The client is built by the worker with max_retries=0: Temporal owns retries, so every attempt
is visible in the workflow's history.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import anthropic

from agents.claude import ModelCallError, anthropic_turn
from agents.context import repository_context
from agents.policy import PlanAnswer, PlanRequest, PolicyError
from agents.prompts import load_prompt


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
        content = (
            f"<goal>{escape(request.goal)}</goal>\n\n"
            f"<repository>\n{repository_context(request.workspace)}\n</repository>"
        )
        if request.memory:
            content += f"\n<memory>\n{escape(request.memory)}\n</memory>"
        try:
            turn = await anthropic_turn(
                self.client, model=self.model, max_tokens=self.max_tokens,
                temperature=self.temperature, system=load_prompt("plan"), tools=[],
                messages=[{"role": "user", "content": content}],
            )  # fmt: skip
        except ModelCallError as err:
            if not err.retryable:
                raise PolicyError(str(err)) from err
            raise
        if not turn.text.strip():
            raise PolicyError(f"the model returned no plan (stop_reason={turn.stop_reason})")
        return PlanAnswer(turn.text, turn.model or self.model, turn.counts)
