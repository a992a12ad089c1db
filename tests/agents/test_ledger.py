from __future__ import annotations

import pytest

from agents.ledger import DEFAULT_PRICES, PRICES_AS_OF, TokenCounts, cost_usd, price_for
from contracts.budget import Budget, Usage


def test_cost_from_the_dated_price_table_by_exact_model_id() -> None:
    counts = TokenCounts(1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert PRICES_AS_OF.startswith("2026-")
    assert cost_usd("claude-opus-4-8", counts, DEFAULT_PRICES) == pytest.approx(5 + 25 + 6.25 + 0.5)
    assert cost_usd("claude-sonnet-5-5", counts, DEFAULT_PRICES) == pytest.approx(
        2 + 10 + 2.5 + 0.1
    )
    custom = {"my-model": (1.0, 2.0, 0.0, 0.0)}
    assert cost_usd("my-model", counts, custom) == pytest.approx(3.0)
    # A newer model is never priced as an older one that shares its prefix: it is unknown.
    assert price_for("claude-sonnet-5-6", DEFAULT_PRICES) is None
    assert cost_usd("claude-sonnet", counts, DEFAULT_PRICES) is None


def test_budgets_stop_before_the_turn_that_would_overrun() -> None:
    used = Usage(turns=3, input_tokens=900, output_tokens=100, cost_usd=0.5)
    assert Budget().exhausted(used, 10_000) is None
    assert Budget(max_turns=4).exhausted(used, 0) is None
    assert "turn budget" in (Budget(max_turns=3).exhausted(used, 0) or "")
    assert "token budget" in (Budget(max_tokens=1000).exhausted(used, 0) or "")
    assert "cost budget" in (Budget(max_cost_usd=0.5).exhausted(used, 0) or "")
    assert "time budget" in (Budget(max_wall_s=60).exhausted(used, 61) or "")
    total = used + Usage(turns=1, input_tokens=1, cache_read_input_tokens=2, cost_usd=0.25)
    assert (total.turns, total.tokens, total.cost_usd) == (4, 1003, 0.75)
    assert total.cache_read_share == pytest.approx(2 / 903)


def test_a_cost_budget_cannot_be_checked_against_turns_of_unknown_price() -> None:
    used = Usage(turns=1, input_tokens=10, unpriced_turns=1)
    assert "cannot be checked" in (Budget(max_cost_usd=5).exhausted(used, 0) or "")
    assert Budget(max_tokens=100).exhausted(used, 0) is None
