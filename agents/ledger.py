"""The cost of a model turn, from a dated price table looked up by exact model id.

A model the table does not name has no known price: its turns are counted with their tokens and
flagged "price unknown" rather than priced as some other model. RATCHET_MODEL_PRICES (JSON,
{"<exact model id>": [input, output, cache write, cache read]}) adds or overrides entries, so a
new model or a contract price needs no release.
"""

from __future__ import annotations

from dataclasses import dataclass

Price = tuple[float, float, float, float]
"""USD per million tokens: input, output, cache write (5-minute), cache read."""

PRICES_AS_OF = "2026-11-30"
"""When DEFAULT_PRICES were last checked against Anthropic's pricing page."""
_OPUS = (5.0, 25.0, 6.25, 0.50)
_SONNET_4 = (3.0, 15.0, 3.75, 0.30)
_HAIKU_4 = (1.0, 5.0, 1.25, 0.10)
_FABLE_5_1 = (10.0, 50.0, 12.50, 0.25)
_FABLE_5 = (10.0, 50.0, 12.50, 1.00)
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-5-5": (4.0, 20.0, 5.0, 0.20),
    "claude-sonnet-5-5": (2.0, 10.0, 2.50, 0.10),  # cache reads $0.10 since 2026-10-07
    "claude-haiku-5-5": (0.10, 0.50, 0.125, 0.01),  # prompts up to 100K tokens
    "claude-fable-5-2": (8.0, 40.0, 10.0, 0.20),
    "claude-fable-5-1": _FABLE_5_1,
    "claude-mythos-5-1": _FABLE_5_1,
    "claude-fable-5": _FABLE_5,
    "claude-mythos-5": _FABLE_5,
    "claude-opus-5": _OPUS,
    "claude-sonnet-5": (2.0, 10.0, 2.50, 0.20),
    "claude-opus-4-8": _OPUS,
    "claude-opus-4-7": _OPUS,
    "claude-opus-4-6": _OPUS,
    "claude-opus-4-5": _OPUS,
    "claude-opus-4-5-20251101": _OPUS,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-5-20250929": _SONNET_4,
    "claude-haiku-4-5": _HAIKU_4,
    "claude-haiku-4-5-20251001": _HAIKU_4,
}


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


def price_for(model: str, prices: dict[str, Price]) -> Price | None:
    """The price of exactly this model id, or None: a newer model is never charged an older
    one's price because their names share a prefix."""
    return prices.get(model)


def cost_usd(model: str, counts: TokenCounts, prices: dict[str, Price]) -> float | None:
    """Cost in USD, or None when the model's price is unknown."""
    price = price_for(model, prices)
    if price is None:
        return None
    per_input, per_output, per_write, per_read = price
    total = (
        counts.input_tokens * per_input
        + counts.output_tokens * per_output
        + counts.cache_creation_input_tokens * per_write
        + counts.cache_read_input_tokens * per_read
    )
    return total / 1_000_000
