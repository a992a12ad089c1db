"""How a run's steps are retried, and what a step that failed for good says: the usage its
paid calls carry and the application failure at its root."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts import runs
    from contracts.budget import Usage, usage_among

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=runs.NON_RETRYABLE_TYPES,
)


def model_retry_policy(initial_s: float, max_s: float) -> RetryPolicy:
    """Unlimited tries (the step's schedule-to-close bounds them), backing off from `initial_s`
    to at most `max_s` between two; an error the API marks permanent stops at once. The
    anthropic SDK itself retries nothing (max_retries=0), so one try is one request."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_s),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max(max_s, initial_s)),
        maximum_attempts=0,
        non_retryable_error_types=runs.MODEL_ERRORS + runs.NON_RETRYABLE_TYPES,
    )


def usage_in(err: BaseException) -> Usage:
    """The usage a failed step or child carries (its paid calls), from the first failure in its
    chain that carries one."""
    found = (usage_among(c.details) for c in _chain(err) if isinstance(c, ApplicationError))
    return next((usage for usage in found if usage is not None), Usage())


def root_cause(err: BaseException) -> tuple[str, str]:
    """The first application failure under the step (an activity's, possibly inside a child)."""
    for cause in _chain(err):
        if isinstance(cause, ApplicationError):
            return cause.type or "StepFailed", cause.message
    return "StepFailed", str(err.__cause__ or err)


def _chain(err: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None:
        found.append(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    return found
