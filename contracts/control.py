"""The contracts of controlling a running task (stdlib only): the bodies and answers of its
updates — raise the budget, cancel, approve, reject.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.budget import Budget, Usage


@dataclass(frozen=True)
class BudgetUpdate(Budget):
    """New limits (None keeps the current one); raising a spent budget resumes a paused run."""


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""


@dataclass(frozen=True)
class ApprovalDecision:
    """The body of the "approve" and "reject" updates; a rejection needs a reason."""

    by: str = ""
    comment: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ControlAnswer:
    """What a budget or cancel update answers: the run's phase, budget and usage after it."""

    phase: str
    budget: Budget
    usage: Usage
    message: str = ""
