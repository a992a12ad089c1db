from __future__ import annotations

import pytest

from agents.ledger import DEFAULT_PRICES, TokenCounts, cost_usd
from workflows.budget import Budget, Usage


def test_cost_from_the_price_table_by_model_or_family() -> None:
    counts = TokenCounts(1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert cost_usd("claude-opus-4-8", counts, DEFAULT_PRICES) == pytest.approx(5 + 25 + 6.25 + 0.5)
    assert cost_usd("claude-haiku-4-5", counts, DEFAULT_PRICES) == pytest.approx(1 + 5 + 1.25 + 0.1)
    custom = {"my-model": (1.0, 2.0, 0.0, 0.0)}
    assert cost_usd("my-model", counts, custom) == pytest.approx(3.0)
    assert cost_usd("other", counts, custom) == 0.0  # no "*" in the table: unpriced


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
