"""Ratchet's search attributes as Temporal's typed keys, and the attributes a run starts with.

A run is started with them only where they are registered (the starter checks the namespace
once); the workflow then keeps `RatchetStatus` current, and only if the run was started with
it, which its history records, so the decision replays the same way.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from contracts import search as names

KIND = SearchAttributeKey.for_keyword(names.KIND)
REPO = SearchAttributeKey.for_keyword(names.REPO)
STATUS = SearchAttributeKey.for_keyword(names.STATUS)
POLICY = SearchAttributeKey.for_keyword(names.POLICY)
SENTRY_ISSUE = SearchAttributeKey.for_keyword(names.SENTRY_ISSUE)
ALL = (KIND, REPO, STATUS, POLICY, SENTRY_ISSUE)


def initial(
    kind: str, repo: str, policy: str, sentry_issue: str | None = None
) -> TypedSearchAttributes:
    pairs = [
        SearchAttributePair(KIND, kind),
        SearchAttributePair(REPO, repo[: names.KEYWORD_LIMIT]),
        SearchAttributePair(STATUS, "running"),
        SearchAttributePair(POLICY, policy),
    ]
    if sentry_issue:
        pairs.append(SearchAttributePair(SENTRY_ISSUE, sentry_issue[: names.KEYWORD_LIMIT]))
    return TypedSearchAttributes(pairs)
