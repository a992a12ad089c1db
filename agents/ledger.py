"""The cost of a model turn, from a price table that lives in settings (not in code)."""

from __future__ import annotations

from dataclasses import dataclass

# USD per million tokens: input, output, cache write (5-minute), cache read, by model name or
# by family prefix. Overridden by RATCHET_MODEL_PRICES (check them against your contract); a
# model that matches nothing costs what "*" says.
DEFAULT_PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-opus": (5.0, 25.0, 6.25, 0.50),
    "claude-sonnet": (3.0, 15.0, 3.75, 0.30),
    "claude-haiku": (1.0, 5.0, 1.25, 0.10),
    "*": (3.0, 15.0, 3.75, 0.30),
}


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


def price_for(
    model: str, prices: dict[str, tuple[float, float, float, float]]
) -> tuple[float, ...]:
    if model in prices:
        return prices[model]
    # The longest matching prefix wins: "claude-sonnet-4-6" is priced as "claude-sonnet".
    for name, price in sorted(prices.items(), key=lambda item: -len(item[0])):
        if name != "*" and model.startswith(name):
            return price
    return prices.get("*", (0.0, 0.0, 0.0, 0.0))


def cost_usd(
    model: str,
    counts: TokenCounts,
    prices: dict[str, tuple[float, float, float, float]],
    *,
    unpriced_is_free: bool = False,
) -> float:
    """Cost in USD; a self-hosted model missing from the table is free, not priced as "*"."""
    if unpriced_is_free:
        prices = {name: price for name, price in prices.items() if name != "*"}
    per_input, per_output, per_write, per_read = price_for(model, prices)
    total = (
        counts.input_tokens * per_input
        + counts.output_tokens * per_output
        + counts.cache_creation_input_tokens * per_write
        + counts.cache_read_input_tokens * per_read
    )
    return total / 1_000_000
