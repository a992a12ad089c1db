"""The one way a candidate is verified, for a forward run's patches and an investigation's revert
alike: its tests, its lint and (when the repository declares a benchmark) its speed, each
against the base's, then the gates' verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import runs
    from contracts import steps as io
    from workflows.steps import Steps


class Verifier:
    """Verifies snapshots of one run; keeps the base's results and the last verdict."""

    def __init__(self, steps: Steps, run: runs.RunRef, test_command: str, *,
                 benchmark: bool = False) -> None:  # fmt: skip
        self._steps, self._run, self._command, self._benchmark = steps, run, test_command, benchmark
        self.baseline: io.TestReport | None = None
        self.baseline_lint: io.LintReport | None = None
        self.last: io.VerifyOutput | None = None
        """The latest verdict (with the patterns' gates, once they ran): a run that stops
        early shows these gates."""

    def gates(self) -> list[runs.Gate]:
        return self.last.gates if self.last else []

    async def measure_base(self) -> io.TestReport:
        """The suite at the base commit: every candidate is graded against it."""
        self.baseline = await self.tests(self._run.base_sha, "baseline", None)
        return self.baseline

    async def lint_base(self) -> io.LintReport:
        self.baseline_lint = await self._lint(self._run.base_sha, "baseline lint", None)
        return self.baseline_lint

    def tests(self, snapshot: str, label: str, round_: int | None) -> Awaitable[io.TestReport]:
        arg = io.TestInput(self._run, snapshot, self._command, self._steps.test_timeout_s,
                             label, grade_with_base_tests=label != "baseline")  # fmt: skip
        return self._steps.step(label, io.RUN_TESTS, arg, io.TestReport, round_=round_)

    async def check(
        self, snapshot: str, round_: int | None
    ) -> tuple[io.VerifyOutput, io.TestReport]:
        """Verify `snapshot`: the verdict, and the test report it was graded on. Its tests and
        lint run side by side (and the base's, when not measured yet)."""
        if workflow.patched("lint-beside-tests"):
            base = [measure() for known, measure in ((self.baseline, self.measure_base),
                                                     (self.baseline_lint, self.lint_base))
                    if known is None]  # fmt: skip
            await asyncio.gather(*base)
            report, linted = await asyncio.gather(
                self.tests(snapshot, "test", round_), self._lint(snapshot, "lint", round_)
            )  # fmt: skip
            baseline, base_lint = self.baseline, self.baseline_lint
        else:
            report = await self.tests(snapshot, "test", round_)
            baseline = self.baseline or await self.measure_base()
            base_lint = self.baseline_lint or await self.lint_base()
            linted = await self._lint(snapshot, "lint", round_)
        assert baseline is not None and base_lint is not None
        perf = None
        if self._benchmark:
            measure = io.PerfInput(self._run, snapshot, self._steps.test_timeout_s)
            perf = await self._steps.step("performance", io.PERFORMANCE, measure,
                                          io.PerfReport, round_=round_)  # fmt: skip
        graded = io.VerifyInput(self._run, snapshot, report, baseline, linted, base_lint, perf)
        self.last = await self._steps.step("verify", io.VERIFY, graded, io.VerifyOutput,
                                           round_=round_)  # fmt: skip
        return self.last, report

    def _lint(self, snapshot: str, label: str, round_: int | None) -> Awaitable[io.LintReport]:
        arg = io.LintInput(self._run, snapshot)
        return self._steps.step(label, io.LINT, arg, io.LintReport, round_=round_)
