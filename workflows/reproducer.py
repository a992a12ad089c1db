"""The reproducer of an investigation: when no existing test fails the way a production event
did, the policy writes one (an agent loop); Ratchet runs it and reads its traceback, and a
mismatch goes back to the policy, a bounded number of times.
"""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import investigation as inv
    from contracts.budget import Budget
    from workflows.steps import Steps


class Reproducer:
    def __init__(self, steps: Steps) -> None:
        self._steps = steps
        self.written: inv.ReproductionCheck | None = None
        """The confirmed reproduction (None: an existing test or command reproduces it)."""
        self.snapshot: str | None = None
        """The bad commit plus the written test: a policy's fix starts from it."""
        self.files: dict[str, str] = {}
        """The written test's files, put into every probe's workspace."""

    async def write(self, inp: inv.InvestigationInput, prep: inv.InvPrepared) -> inv.InvPrepared:
        """The policy writes a test that must fail the way the event failed. The confirmed
        test is the reproduction from here on."""
        if inp.policy is None or prep.target is None or prep.evidence_ref is None:
            raise self._steps.fail("BadInput", "writing a reproduction needs a policy and an event")
        snapshot, feedback_ref = prep.run.base_sha, None
        attempts = max(1, inp.reproducer_attempts)
        for attempt in range(1, attempts + 1):
            out = await self._steps.agent(
                "reproducer", f"{inp.run_id}-reproduce-{attempt}", attempt, run=prep.run,
                role="reproduce", provider=inp.policy.name, policy=inp.policy,
                goal=f"Reproduce the production error: {prep.target.describe()}.",
                plan_ref=prep.evidence_ref, feedback_ref=feedback_ref, snapshot=snapshot,
                test_command=prep.test_command, budget=Budget(), script_key=f"reproduce.{attempt}",
            )  # fmt: skip
            if out.stop in ("failed", "loop", "cancelled"):
                why = f"the reproducer stopped ({out.stop}): {out.reason}"
                raise self._steps.fail(out.error_type or "ReproducerFailed", why)
            snapshot = out.snapshot
            arg = inv.ReproductionInput(prep.run, snapshot, prep.target, inp.test_timeout_s)
            check = await self._steps.step("check reproduction", inv.CHECK_REPRODUCTION, arg,
                                           inv.ReproductionCheck, round_=attempt)  # fmt: skip
            if check.matched:
                self.written, self.snapshot, self.files = check, snapshot, check.files
                self._steps.record_snapshot("reproduction", snapshot)
                return replace(prep, reproduce=check.command)
            feedback_ref = check.feedback_ref
        raise self._steps.fail(
            "NotReproduced",
            f"the reproducer's test did not fail the way the event did in {attempts} attempts: "
            f"{check.detail}",
        )
