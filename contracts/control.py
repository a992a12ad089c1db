"""The contracts of controlling a running task (stdlib only): the bodies and answers of its
updates — raise the budget, cancel, approve, reject.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.budget import Budget, Usage

DECISION_TEXT_LIMIT = 2000


@dataclass(frozen=True)
class BudgetUpdate(Budget):
    """New limits (None keeps the current one); raising a spent budget resumes a paused run."""

    def problem(self, phase: str) -> str | None:
        """Why a run in `phase` refuses this update, or None."""
        if phase not in ("running", "paused"):
            return f"the run is {phase}: its budget cannot change"
        named = (name for name, value in vars(self).items() if value is not None and value <= 0)
        return next((f"{name} must be positive" for name in named), None)


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""

    def problem(self, phase: str) -> str | None:
        """Why a run in `phase` cannot be cancelled, or None."""
        ok = ("running", "paused", "awaiting_approval")
        return None if phase in ok else f"the run is already {phase}"


@dataclass(frozen=True)
class ApprovalDecision:
    """The body of the "approve" and "reject" updates; a rejection needs a reason."""

    by: str = ""
    comment: str = ""
    reason: str = ""

    def problem(self, phase: str, verdict: str) -> str | None:
        """Why a run in `phase` refuses this decision ("approved" or "rejected"), or None."""
        if phase != "awaiting_approval":
            return f"the run is not waiting for approval (it is {phase})"
        if verdict == "rejected" and not self.reason.strip():
            return "a rejection needs a reason"
        long = [name for name, text in vars(self).items() if len(text) > DECISION_TEXT_LIMIT]
        return f"{long[0]} is over {DECISION_TEXT_LIMIT} characters" if long else None


@dataclass(frozen=True)
class ControlAnswer:
    """What a budget or cancel update answers: the run's phase, budget and usage after it."""

    phase: str
    budget: Budget
    usage: Usage
    message: str = ""
