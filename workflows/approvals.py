"""Waiting for a person: approve the plan before it is executed, or the patch before delivery.

The wait is a Temporal update with a validator (a refused decision writes nothing to history)
and a timer: unanswered, the run ends "expired", its work kept as a patch and snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.runs import Approval, ApprovalDecision, ControlAnswer
    from workflows.steps import StepRunner


class ApprovalEnded(Exception):
    """Leaves the pipeline: the approval was refused or never came."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase
        self.message = message


class ApprovalSteps(StepRunner):
    _decision: tuple[str, ApprovalDecision] | None = None

    def _check_decision(self, decision: ApprovalDecision, verdict: str) -> None:
        """The validator of "approve" and "reject"."""
        if self._state.phase != "awaiting_approval":
            raise ApplicationError(
                f"the run is not waiting for approval (it is {self._state.phase})"
            )
        if verdict == "rejected" and not decision.reason.strip():
            raise ApplicationError("a rejection needs a reason")
        for name, text in (("by", decision.by), ("comment", decision.comment),
                           ("reason", decision.reason)):  # fmt: skip
            if len(text) > 2000:
                raise ApplicationError(f"{name} is over 2000 characters")

    def _decide(self, decision: ApprovalDecision, verdict: str) -> ControlAnswer:
        self._decision = (verdict, decision)
        stage = self._state.awaiting
        return ControlAnswer(
            self._state.phase, self._state.budget, self._state.usage, f"{stage} {verdict}"
        )

    async def _await_approval(
        self, stage: str, timeout_s: float, cancelled: Callable[[], bool]
    ) -> None:
        """Wait for a decision on `stage`; raises ApprovalEnded unless it is approved (or a
        cancel, which `cancelled` tells of, ends the wait: the caller handles that)."""
        self._decision = None
        self._set_phase("awaiting_approval", awaiting=stage)
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None or cancelled(),
                timeout=timedelta(seconds=timeout_s),
            )
        except TimeoutError:
            self._record(Approval(stage, "expired", "", workflow.now().isoformat()))
            raise ApprovalEnded(
                "expired", f"no decision on the {stage} within {timeout_s:g}s: the work is kept"
            ) from None
        if self._decision is None:  # cancelled while waiting: the caller handles it
            self._set_phase("running", awaiting="")
            return
        verdict, decision = self._decision
        by = decision.by or "api"
        self._record(
            Approval(
                stage,
                verdict,
                by,
                workflow.now().isoformat(),
                decision.reason if verdict == "rejected" else decision.comment,
            )
        )
        if verdict == "rejected":
            raise ApprovalEnded("rejected", f"the {stage} was rejected by {by}: {decision.reason}")
        self._set_phase("running", awaiting="")

    def _record(self, approval: Approval) -> None:
        self._state = replace(self._state, approvals=[*self._state.approvals, approval])
