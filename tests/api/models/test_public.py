"""What the API answers about a run's usage: the ledger, with what callers want derived from it."""

from __future__ import annotations

from api.models.public import UsagePublic
from contracts.budget import Usage


def test_usage_is_shown_with_its_cache_share_rounded_and_unpriced_turns_flagged() -> None:
    usage = Usage(turns=3, input_tokens=2, cache_read_input_tokens=1, cost_usd=0.5)
    shown = UsagePublic.of(usage)
    assert shown.cache_read_share == 0.3333  # 1 of 3 prompt tokens, to four places
    assert shown.price_unknown is False
    assert shown.model_dump(exclude={"cache_read_share", "price_unknown", "children"}) == {
        "turns": 3, "input_tokens": 2, "output_tokens": 0, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1, "cost_usd": 0.5, "unpriced_turns": 0,
    }  # fmt: skip
    assert UsagePublic.of(Usage(turns=1, unpriced_turns=1)).price_unknown is True
    assert UsagePublic.of(Usage()).cache_read_share == 0.0  # no prompt tokens: no division


def test_children_are_shown_by_run_id_as_usage_of_their_own() -> None:
    shown = UsagePublic.of(Usage(turns=1), {"task-0123456789ab": Usage(turns=2, unpriced_turns=2)})
    child = shown.children["task-0123456789ab"]
    assert (child.turns, child.price_unknown, child.children) == (2, True, {})
    assert UsagePublic.of(Usage()).children == {}
