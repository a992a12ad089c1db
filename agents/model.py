"""The one model boundary: every policy (the coding agent, the planner, the roles that answer
JSON) asks a `Model` for one turn, whichever provider serves it — Claude, an OpenAI-compatible
server, or the scripted test double that replays tool-call turns through the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.ledger import TokenCounts

Message = dict[str, Any]
"""A message in the canonical (Messages API) shape: tool calls are `tool_use` blocks of the
assistant, their results `tool_result` blocks of the next user message."""


class PolicyError(Exception):
    """The policy cannot produce an answer; retrying the same request will not help."""


class ModelCallError(Exception):
    """A failed model call, classified: retry it (maybe after `retry_after_s`) or give up."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None,
        retry_after_s: float | None = None, kind: str = "ModelError",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.kind = kind


@dataclass(frozen=True)
class ModelCall:
    """One request, the same for every provider."""

    purpose: str
    """"code", "refactor", "plan" or a role name: picks the model settings (RATCHET_MODELS)."""
    system: str
    messages: list[Message]
    tools: bool = False
    """Offer the agent's tools (each provider offers them in its own form)."""
    max_tokens: int | None = None
    """None: the purpose's configured limit. A cut-off answer is asked again with more."""
    script_key: str = ""
    """Which of a script's answers this call replays ("patch.1", "plan", "perspective.x")."""
    index: int = 0
    """Which answer under `script_key` (0-based): the turn number in a conversation."""


@dataclass(frozen=True)
class TurnResult:
    content: list[dict[str, Any]]
    """The assistant message's content blocks (canonical shape), as sent back next turn."""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, name, input as JSON) of each tool_use block."""
    stop_reason: str = ""
    text: str = ""
    model: str = ""
    counts: TokenCounts = field(default_factory=TokenCounts)
    max_tokens: int = 0
    """The limit the answer was asked with (a "max_tokens" stop reached it)."""
    billed: bool = True
    """False for the scripted test double: no provider billed this turn."""


class Model(Protocol):
    provider: str
    """As chosen in a task's "policy" field: "anthropic", "openai-compatible", "scripted"."""
    label: str
    """What a person should be told about it (a test double says so here)."""

    def model_for(self, purpose: str) -> str:
        """The model id a call of this purpose is sent to."""
        ...

    def limit_for(self, purpose: str) -> tuple[int, int]:
        """(configured max_tokens, the most a cut-off answer may be asked again with)."""
        ...

    async def turn(self, call: ModelCall) -> TurnResult:
        """One answer; ModelCallError says whether trying again can help."""
        ...
