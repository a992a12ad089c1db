"""Waiting for a person: approve the plan before it is executed, or the patch before delivery.

The wait is a Temporal update with a validator (a refused decision writes nothing to history)
and a timer: unanswered, the run ends "expired", its work kept as a patch and snapshots.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.control import ApprovalDecision, ControlAnswer
    from contracts.runs import Approval
    from workflows.steps import Steps


class ApprovalEnded(Exception):
    """Leaves the pipeline: the approval was refused or never came."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase
        self.message = message


class Approvals:
    """A run's approvals: the update handlers record decisions (contracts check them), the
    pipeline waits."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps
        self._decision: tuple[str, ApprovalDecision] | None = None

    def decide(self, decision: ApprovalDecision, verdict: str) -> ControlAnswer:
        self._decision = (verdict, decision)
        state = self._steps.state
        return ControlAnswer(state.phase, state.budget, state.usage, f"{state.awaiting} {verdict}")

    async def wait(self, stage: str, timeout_s: float) -> None:
        """Wait for a decision on `stage`; raises ApprovalEnded unless it is approved (or a
        cancel ends the wait: the caller handles that)."""
        self._decision = None
        self._steps.set_phase("awaiting_approval", awaiting=stage)
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None or self._steps.cancel_requested,
                timeout=timedelta(seconds=timeout_s),
            )
        except TimeoutError:
            self._record(Approval(stage, "expired", "", workflow.now().isoformat()))
            raise ApprovalEnded(
                "expired", f"no decision on the {stage} within {timeout_s:g}s: the work is kept"
            ) from None
        if self._decision is None:  # cancelled while waiting: the caller handles it
            self._steps.set_phase("running", awaiting="")
            return
        verdict, decision = self._decision
        by = decision.by or "api"
        note = decision.reason if verdict == "rejected" else decision.comment
        self._record(Approval(stage, verdict, by, workflow.now().isoformat(), note))
        if verdict == "rejected":
            raise ApprovalEnded("rejected", f"the {stage} was rejected by {by}: {decision.reason}")
        self._steps.set_phase("running", awaiting="")

    def _record(self, approval: Approval) -> None:
        self._steps.update(approvals=[*self._steps.state.approvals, approval])
