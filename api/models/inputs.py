"""What callers send: every request body, refused whole when any part of it is wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.runs import EnvironmentSpec, PolicyName


class Input(BaseModel):
    """Every request body: unknown fields refused, no NaN or infinity, and no NUL character
    anywhere (git, paths and subprocesses cannot take one; a run must not start with it)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        if _has_nul(data):
            raise ValueError("text may not contain a NUL character (\\u0000)")
        return data


def _has_nul(data: object) -> bool:
    # A loop, not recursion: a body nested thousands deep is refused by its schema, not by
    # blowing the stack here.
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return True
        if isinstance(value, dict):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple):
            pending += value
    return False


class BudgetIn(Input):
    max_cost_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    max_tokens: int | None = Field(default=None, gt=0, le=10**12)
    max_turns: int | None = Field(default=None, gt=0, le=1_000_000)
    max_wall_s: float | None = Field(default=None, gt=0, le=90 * 86400)


class CancelIn(Input):
    reason: str = Field(default="", max_length=2000)


class ApproveIn(Input):
    by: str | None = Field(default=None, min_length=1, max_length=200)
    """Who approves (recorded with the run); "api" when not given."""
    comment: str = Field(default="", max_length=2000)


class RejectIn(Input):
    by: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    """Why: required, and shown with the run."""


class EnvironmentIn(Input):
    """The repository's environment: setup commands run (with network, through the egress
    proxy) in the sandbox before any test, `python`/`pip` being the environment's own."""

    setup: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\S")]] = Field(
        min_length=1, max_length=50
    )
    key_files: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=100
    )
    """Files (globs) whose content keys the environment; default: the manifests and lockfiles."""

    @model_validator(mode="after")
    def _relative_key_files(self) -> EnvironmentIn:
        for path in self.key_files:
            if path.startswith("/") or ".." in path.split("/"):
                raise ValueError(f"key_files must be paths inside the repository: {path!r}")
        return self

    @staticmethod
    def spec(body: EnvironmentIn | None) -> EnvironmentSpec | None:
        return None if body is None else EnvironmentSpec(list(body.setup), list(body.key_files))


class TaskCreate(Input):
    repo: str = Field(min_length=1, max_length=4096, description="absolute path or git URL")
    goal: str = Field(min_length=1, description="what the change should achieve")
    base_ref: str = Field(default="HEAD", min_length=1, max_length=256)
    test_command: str | None = Field(default=None, max_length=4096)
    policy: PolicyName | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    max_repair_rounds: int | None = Field(default=None, ge=0, le=20)
    budget: BudgetIn | None = None
    perspectives: int = Field(default=0, ge=0, le=10)
    """Planners with distinct lenses drafting in parallel, merged by a synthesizer (0: off)."""
    lenses: list[str] = Field(default_factory=list, max_length=10)
    """The lenses, in order (default: correctness, simplicity, performance, security,
    testability)."""
    adversarial: bool = False
    """A red team writes tests meant to break a passing patch; valid ones send it back."""
    invariants: bool = False
    """Property-based invariants that hold at base become guards the patch must keep."""
    memory: bool | None = None
    """Record what the run learned (default: on for model policies, off for the scripted one)."""
    pattern_share: float = Field(default=0.2, gt=0, le=1)
    """The share of each budget limit every multi-agent pattern may spend."""
    approve_plan: bool = False
    """Wait for POST /runs/{id}/approve before the plan is executed."""
    require_approval: bool = False
    """Wait for POST /runs/{id}/approve before the verified patch is delivered."""
    approval_timeout_s: float = Field(default=7 * 24 * 3600.0, ge=1, le=90 * 24 * 3600)
    """Unanswered this long, the run ends "expired" with its work kept (not delivered)."""
    environment: EnvironmentIn | None = None


class Reproduce(Input):
    test_command: str | None = Field(default=None, min_length=1, max_length=4096)
    test_id: str | None = Field(default=None, min_length=1, max_length=1000)
    write: bool = False
    """Have the policy write a reproduction from the event even when existing tests fail."""


class InvestigationCreate(Input):
    repo: str = Field(min_length=1, max_length=4096)
    good_ref: str | None = Field(default=None, min_length=1, max_length=256)
    bad_ref: str = Field(default="HEAD", min_length=1, max_length=256)
    reproduce: Reproduce = Field(default_factory=Reproduce)
    kind: Literal["regression", "performance", "invariants"] = "regression"
    policy: PolicyName | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    parallel_probes: int | None = Field(default=None, ge=1, le=16)
    benchmark_runs: int = Field(default=5, ge=2, le=30)
    """Performance mode: runs of the benchmark per side of each comparison."""
    max_slowdown: float = Field(default=0.10, gt=0, le=10)
    """Performance mode: how much slower (median) counts as a regression, if significant."""
    test_command: str | None = Field(default=None, min_length=1, max_length=4096)
    """The whole suite, for the fix's gates (the reproduction is `reproduce`)."""
    environment: EnvironmentIn | None = None
    event: dict[str, Any] | None = None
    """The error, in Sentry's event shape ({"exception": {"values": [{"type", "value",
    "stacktrace": {"frames": [...]}}]}, "release", "environment", "tags", ...}): data."""
    traceback: str | None = Field(default=None, min_length=1, max_length=200_000)
    """The error as a Python traceback, printed (parsed into its exception and frames)."""


class ForkCreate(Input):
    from_step: str = Field(min_length=1, max_length=100, description='e.g. "base", "patch-1"')
    goal: str | None = Field(default=None, min_length=1)
    policy: PolicyName | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    max_repair_rounds: int | None = Field(default=None, ge=0, le=20)


class DriftCreate(Input):
    repo: str = Field(min_length=1, max_length=4096)
    ref: str = Field(default="HEAD", min_length=1, max_length=256)
    policy: PolicyName | None = None
    policy_script: str | None = Field(default=None, max_length=4096)
    investigate: bool = True
    """Start an investigation when a claim's test shows drift."""
    environment: EnvironmentIn | None = None


class ScheduleCreate(DriftCreate):
    every_s: int = Field(ge=1, le=31 * 86400, description="seconds between drift checks")
    kind: Literal["drift"] = "drift"
