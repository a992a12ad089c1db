"""Retry policies of model calls, shared by the agent loop and the master workflows' steps."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from contracts.runs import MODEL_ERRORS, NON_RETRYABLE_TYPES


def model_retry_policy(initial_s: float, max_s: float) -> RetryPolicy:
    """Unlimited tries (the step's schedule-to-close bounds them), backing off from `initial_s`
    to at most `max_s` between two; an error the API marks permanent stops at once. The
    anthropic SDK itself retries nothing (max_retries=0), so one try is one request."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_s),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max(max_s, initial_s)),
        maximum_attempts=0,
        non_retryable_error_types=MODEL_ERRORS + NON_RETRYABLE_TYPES,
    )
