"""Contracts of DriftWorkflow (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.runs import EnvironmentSpec, PolicyChoice, Queues, RunRef

DRIFT_WORKFLOW = "DriftWorkflow"
DRIFT_PREPARE = "ratchet.drift.prepare"
CHECK_CLAIMS = "ratchet.drift.check"


@dataclass(frozen=True)
class DriftInput:
    repo: str
    policy: PolicyChoice
    ref: str = "HEAD"
    investigate: bool = True
    """Start an investigation when a claim's test shows drift."""
    trace_id: str = ""
    test_timeout_s: float = 600.0
    queues: Queues = field(default_factory=Queues)
    environment: EnvironmentSpec | None = None


@dataclass(frozen=True)
class DriftPrepareInput:
    run_id: str
    repo: str
    ref: str
    when: str
    environment: EnvironmentSpec | None = None


@dataclass(frozen=True)
class DriftPrepared:
    run: RunRef
    specs_ref: str
    spec_chars: int
    attempt: int = 1


@dataclass(frozen=True)
class CheckInput:
    run: RunRef
    claims_ref: str
    timeout_s: float


@dataclass(frozen=True)
class CheckOutput:
    report_ref: str
    findings_ref: str
    holds: int
    drift: int
    unchecked: int
    drift_tests: dict[str, str] = field(default_factory=dict)
    """path → content of the claim tests that fail: the reproduction for an investigation."""
    attempt: int = 1
    reproduce: str = ""
    """The command that runs the failing claim tests (an investigation's reproduction)."""
