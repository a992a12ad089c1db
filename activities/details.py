"""The one line the run's step list shows for each kind of step result, written where the result
is made (the activity side) so workflows hold no presentation text; see `with_detail`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from contracts.investigation import ReproductionCheck
from contracts.roles import AdversarialOutput, MemoryRead, MemoryRecorded, RoleOutput
from contracts.runs import StepResult
from contracts.steps import (
    Delivery,
    EnvironmentOutput,
    LintReport,
    PatchOutput,
    PerfReport,
    PlanOutput,
    TestReport,
    VerifyOutput,
)

DETAIL_CHARS = 500
"""The step list keeps this much of a line (the workflow's state stays small)."""


def with_detail(result: object) -> object:
    """`result` with its step line filled in (other results pass through unchanged)."""
    describe = _DETAILS.get(type(result))
    if describe is None or not isinstance(result, StepResult) or result.step_detail:
        return result
    return replace(result, step_detail=describe(result)[:DETAIL_CHARS])


def _tests(r: TestReport) -> str:
    verdict = "passed" if r.passed else f"failed (exit {r.exit_code})"
    if r.passed_count or r.failed_count:
        verdict += f": {r.passed_count} passed, {r.failed_count} failed"
    if r.flaky:
        verdict += f", {len(r.flaky)} flaky"
    if r.killed_by:
        verdict += f", killed by {', '.join(r.killed_by)}"
    if r.cannot_run:
        verdict += f"; the suite cannot run: {r.cannot_run[:300]}"
    if r.restored_tests:
        verdict += f"; graded with the original {', '.join(r.restored_tests)}"
    sandbox = r.isolation.split(":", 1)[0]
    return f"{verdict} in {r.duration_s:.1f}s [sandbox: {sandbox}]"


def _lint(r: LintReport) -> str:
    if not r.configured:
        return "no lint command"
    return f"{r.count} findings ({r.command.split()[0]})" if r.ok else r.detail[:200]


_DETAILS: dict[type, Callable[[Any], str]] = {
    TestReport: _tests,
    LintReport: _lint,
    EnvironmentOutput: lambda r: (
        f"cache hit ({r.environment.source})"
        if r.cache_hit
        else f"built in {r.duration_s:.1f} s ({r.environment.source})"
    ),
    VerifyOutput: lambda r: ", ".join(
        f"{g.name} {'ok' if g.passed else 'FAILED'}" for g in r.gates
    ),
    PatchOutput: lambda r: r.message,
    PlanOutput: lambda r: f"by {r.policy_label}",
    PerfReport: lambda r: r.detail[:200],
    Delivery: lambda r: f"branch {r.branch}, {r.files_changed} files",
    RoleOutput: lambda r: r.summary + (" (answer retried once)" if r.consumed > 1 else ""),
    MemoryRead: lambda r: f"{len(r.ids)} entries" + (f": {', '.join(r.ids)}" if r.ids else ""),
    MemoryRecorded: lambda r: f"version {r.version}: +{r.added} entries, {r.stale} marked stale",
    AdversarialOutput: lambda r: f"{r.tried} tests, {r.failing} failing",
    ReproductionCheck: lambda r: ("matches: " if r.matched else "refused: ") + r.detail[:400],
}
