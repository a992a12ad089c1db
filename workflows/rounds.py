"""The rounds of a forward run: patch until a candidate passes every gate (the suite's, then
the patterns'), then refactor, kept only if it passes them too: quality only moves one way.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import steps as io
    from contracts.results import TaskResult
    from workflows.coding import Coder
    from workflows.patterns import Patterns
    from workflows.steps import Steps


@dataclass(frozen=True)
class Verified:
    """A candidate that passed every gate."""

    snapshot: str
    verdict: io.VerifyOutput
    isolation: str
    refactor_kept: bool = False


class Rounds:
    def __init__(self, steps: Steps, coder: Coder, patterns: Patterns) -> None:
        self._steps, self._coder, self._patterns = steps, coder, patterns

    async def repair(self) -> Verified:
        """Patch rounds until one passes every gate; each round patches the previous attempt,
        so feedback is about what is in front of it."""
        task, coder = self._coder.task, self._coder
        current = coder.latest = task.start_snapshot or coder.run.base_sha
        feedback_ref: str | None = None
        rounds = task.max_repair_rounds + 1
        for round_ in range(1, rounds + 1):
            patch = await coder.propose("patch", round_, current, feedback_ref)
            if not patch.applied:
                feedback_ref = patch.patch_ref
                continue
            current = coder.latest = patch.snapshot
            self._steps.record_snapshot(f"patch-{round_}", current)
            verdict, report, feedback_ref = await self._judge(current, round_)
            if verdict.passed:
                return Verified(current, verdict, report.isolation)
        baseline = coder.verifier.baseline
        self._steps.keep_result(TaskResult(
            gates=coder.verifier.gates(), patch_ref=None, branch=None, plan_ref=coder.plan.plan_ref,
            isolation=baseline.isolation if baseline else "",
        ))  # fmt: skip
        unrunnable = (f"; the suite cannot run at the base commit either ({baseline.cannot_run})"
                      if baseline and baseline.cannot_run else "")  # fmt: skip
        raise self._steps.fail(
            "VerificationFailed",
            f"no patch passed verification in {rounds} rounds; see the last gates{unrunnable}",
        )

    async def refactor(self, verified: Verified) -> Verified:
        """Refactor, and keep it only if it verifies too: quality only moves one way."""
        refactor = await self._coder.propose("refactor", 1, verified.snapshot, None)
        if not (refactor.applied and refactor.changed):
            return verified
        self._steps.record_snapshot("refactor-1", refactor.snapshot)
        verdict, report, _ = await self._judge(refactor.snapshot, None)
        if not verdict.passed:
            return verified
        return Verified(refactor.snapshot, verdict, report.isolation, refactor_kept=True)

    async def _judge(
        self, snapshot: str, round_: int | None
    ) -> tuple[io.VerifyOutput, io.TestReport, str | None]:
        """The verdict on a candidate with the patterns' gates after the suite's (each only
        while every gate so far passed), and the feedback for the coder when it failed."""
        task, coder, patterns = self._coder.task, self._coder, self._patterns
        verdict, report = await coder.verifier.check(snapshot, round_)
        feedback = verdict.feedback_ref
        if verdict.passed and task.invariants:
            gate, feedback = await patterns.check_invariants(coder.run, snapshot, round_)
            verdict = verdict.with_gate(gate)
        if verdict.passed and task.adversarial:
            gate, feedback = await patterns.red_team(coder.run, snapshot, round_ or 0)
            verdict = verdict.with_gate(gate)
        coder.verifier.last = verdict
        return verdict, report, feedback
