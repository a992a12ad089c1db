"""How a worker runs repository code: limits, sandbox, re-runs, environment builds."""

from __future__ import annotations

from dataclasses import dataclass, field

from gym.allowlist import Allowlist
from gym.runner import Limits
from gym.sandbox import Sandbox


@dataclass(frozen=True)
class RunnerConfig:
    limits: Limits
    sandbox: Sandbox
    reruns: int = 1
    allowlist: Allowlist = field(default_factory=Allowlist)
    """Hosts an environment build may reach through the egress proxy."""
    env_limits: Limits = field(default_factory=lambda: Limits(timeout_s=1800.0))
    """Limits of one setup command of an environment build."""
    tool_timeout_s: float = 300.0
    """Wall-clock limit of one shell command of the agent's (RATCHET_TOOL_TIMEOUT_S)."""
