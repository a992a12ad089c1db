"""The names of Ratchet's custom search attributes: what the Temporal UI and GET /runs filter on
(Keyword attributes; the typed keys are made in ratchet/search_keys.py)."""

from __future__ import annotations

KIND = "RatchetKind"
REPO = "RatchetRepo"
STATUS = "RatchetStatus"
POLICY = "RatchetPolicy"
SENTRY_ISSUE = "RatchetSentryIssue"
ALL = (KIND, REPO, STATUS, POLICY, SENTRY_ISSUE)
KEYWORD_LIMIT = 2048
"""A longer Keyword value is refused by the server."""
