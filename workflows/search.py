"""Keeping a run's search attributes current, from inside its workflow (the keys and the
attributes a run starts with are in ratchet/search_keys.py)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from ratchet.search_keys import SENTRY_ISSUE, STATUS, initial


def for_child(kind: str, repo: str, policy: str) -> TypedSearchAttributes | None:
    """A child run's attributes, from inside a workflow: only when its parent has them."""
    parent = workflow.info().typed_search_attributes
    if parent.get(STATUS) is None:
        return None
    return initial(kind, repo, policy, parent.get(SENTRY_ISSUE))


def set_status(status: str) -> None:
    """Keep RatchetStatus current (inside a workflow); a no-op for runs started without it."""
    if workflow.info().typed_search_attributes.get(STATUS) is not None:
        workflow.upsert_search_attributes([STATUS.value_set(status)])
