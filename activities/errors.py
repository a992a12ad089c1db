"""Turn the gym's and the agents' permanent errors into non-retryable ApplicationErrors."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from agents.model import ModelCallError, PolicyError
from gym.errors import GymError
from ratchet.artifacts import ArtifactNotFound

P = ParamSpec("P")
R = TypeVar("R")

PERMANENT = (GymError, PolicyError, ArtifactNotFound)


def permanent_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Errors that a retry cannot fix fail the step at once, with their message kept."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except PERMANENT as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        except ModelCallError as err:
            # Retryable or not, say which, and honour the API's retry-after in Temporal's backoff.
            delay = timedelta(seconds=err.retry_after_s) if err.retry_after_s is not None else None
            raise ApplicationError(
                str(err), type=err.kind, non_retryable=not err.retryable, next_retry_delay=delay
            ) from err

    return wrapper
