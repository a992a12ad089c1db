"""Ratchet's custom search attributes: what the Temporal UI and GET /runs filter on.

A run is started with them only where they are registered (the starter checks the namespace
once); the workflow then keeps `RatchetStatus` current, and only if the run was started with
it, which its history records, so the decision replays the same way.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

KIND = SearchAttributeKey.for_keyword("RatchetKind")
REPO = SearchAttributeKey.for_keyword("RatchetRepo")
STATUS = SearchAttributeKey.for_keyword("RatchetStatus")
POLICY = SearchAttributeKey.for_keyword("RatchetPolicy")
SENTRY_ISSUE = SearchAttributeKey.for_keyword("RatchetSentryIssue")
ALL = (KIND, REPO, STATUS, POLICY, SENTRY_ISSUE)

KEYWORD_LIMIT = 2048  # a longer Keyword value is refused by the server


def initial(
    kind: str, repo: str, policy: str, sentry_issue: str | None = None
) -> TypedSearchAttributes:
    pairs = [
        SearchAttributePair(KIND, kind),
        SearchAttributePair(REPO, repo[:KEYWORD_LIMIT]),
        SearchAttributePair(STATUS, "running"),
        SearchAttributePair(POLICY, policy),
    ]
    if sentry_issue:
        pairs.append(SearchAttributePair(SENTRY_ISSUE, sentry_issue[:KEYWORD_LIMIT]))
    return TypedSearchAttributes(pairs)


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
