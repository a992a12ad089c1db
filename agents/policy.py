"""The `Policy` Protocol every policy implements, and the requests it receives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from agents.ledger import TokenCounts

Step = Literal["patch", "refactor"]


class PolicyError(Exception):
    """The policy cannot produce an answer; retrying the same request will not help."""


@dataclass(frozen=True)
class PlanRequest:
    goal: str
    workspace: Path
    """A clean checkout of the base snapshot; read-only for the policy."""
    memory: str = ""
    """What earlier runs learned about the repository (data, quoted)."""


@dataclass(frozen=True)
class PatchRequest:
    goal: str
    plan: str
    step: Step
    round: int
    """1 for the first attempt; each later round carries the previous round's failure."""
    feedback: str
    workspace: Path
    """A checkout of the current snapshot; policies read it, the gym writes it."""


@dataclass(frozen=True)
class PlanAnswer:
    text: str
    model: str = ""
    counts: TokenCounts | None = None
    """Tokens the plan cost, for the ledger (None for policies that use no model)."""


class Policy(Protocol):
    name: str
    """Short name, as chosen in a task's "policy" field."""
    label: str
    """What a person should be told about this policy (a test double says so here)."""

    async def plan(self, request: PlanRequest) -> PlanAnswer:
        """A plan in prose for the goal."""
        ...


class ScriptPolicy(Policy, Protocol):
    """A policy that answers each patch step in one go (the scripted test double)."""

    async def propose(self, request: PatchRequest) -> str:
        """A patch (unified diff or search/replace blocks); "" proposes no change."""
        ...
