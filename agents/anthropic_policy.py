"""Claude as the policy, through the Messages API.

The client is built by the worker with max_retries=0: Temporal owns retries, so every attempt
is visible in the workflow's history.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import anthropic

from agents.context import repository_context
from agents.policy import PatchRequest, PlanRequest, PolicyError
from agents.prompts import load_prompt

# Client errors that a retry cannot fix (bad request, auth, permission, unknown model).
_PERMANENT = {400, 401, 403, 404}


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

    async def plan(self, request: PlanRequest) -> str:
        content = (
            f"<goal>{escape(request.goal)}</goal>\n\n"
            f"<repository>\n{repository_context(request.workspace)}\n</repository>"
        )
        return await self._ask(load_prompt("plan"), content)

    async def propose(self, request: PatchRequest) -> str:
        content = (
            f"<goal>{escape(request.goal)}</goal>\n<plan>{escape(request.plan)}</plan>\n"
            f"<step>{request.step}, round {request.round}</step>\n"
        )
        if request.feedback:
            content += f"<feedback>{escape(request.feedback)}</feedback>\n"
        if request.step == "refactor":
            content += (
                "Refactor only if it clearly helps readability without changing behaviour; "
                "answer with no edit blocks otherwise.\n"
            )
        content += f"<repository>\n{repository_context(request.workspace)}\n</repository>"
        answer = await self._ask(load_prompt("patch"), content)
        return answer if "<<<<<<< SEARCH" in answer else ""

    async def _ask(self, system: str, content: str) -> str:
        try:
            message = await self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                extra_body=None if self.temperature is None else {"temperature": self.temperature},
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": content}],
            )
        except anthropic.APIStatusError as err:
            if err.status_code in _PERMANENT:
                raise PolicyError(f"Anthropic API {err.status_code}: {err.message}") from None
            raise
        text = "".join(block.text for block in message.content if block.type == "text")
        if not text.strip():
            raise PolicyError(f"the model returned no text (stop_reason={message.stop_reason})")
        return text
