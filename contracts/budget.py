"""The cost ledger and budgets of a run (stdlib only; used by workflows, activities and the API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace

USAGE_DETAIL = "ratchet_usage"
"""The key under which a failed step or run carries its usage in the error's details, so paid
calls are counted whatever happened after them."""


@dataclass(frozen=True)
class Usage:
    """Tokens and cost, per turn and summed per run (the cost ledger)."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_turns: int = 0
    """Turns of a model with no known price: their tokens count, their cost is not in
    `cost_usd` (a lower bound then), and a cost budget cannot be checked against them."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            turns=self.turns + other.turns,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced_turns=self.unpriced_turns + other.unpriced_turns,
        )

    @property
    def cache_read_share(self) -> float:
        """The share of input tokens read from the prompt cache (0 to 1)."""
        prompt = self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
        return self.cache_read_input_tokens / prompt if prompt else 0.0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


@dataclass(frozen=True)
class Budget:
    """Limits of a run's model use; None means no limit."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_turns: int | None = None
    max_wall_s: float | None = None

    def updated(self, changes: Budget) -> Budget:
        """These limits with every limit `changes` sets (None there keeps the one here)."""
        given = {f.name: getattr(changes, f.name) for f in fields(Budget)}
        return replace(self, **{name: value for name, value in given.items() if value is not None})

    def share(self, fraction: float) -> Budget:
        """A fraction of each limit (at least one token or turn), for one part of a run."""
        return Budget(
            max_cost_usd=None if self.max_cost_usd is None else self.max_cost_usd * fraction,
            max_tokens=None if self.max_tokens is None else max(1, int(self.max_tokens * fraction)),
            max_turns=None if self.max_turns is None else max(1, int(self.max_turns * fraction)),
        )

    def share_spent(self, fraction: float, usage: Usage) -> str | None:
        """Which limit of a `fraction` share of this budget `usage` spent, or None."""
        return self.share(fraction).exhausted(usage, 0.0)

    def exhausted(self, usage: Usage, elapsed_s: float) -> str | None:
        """Which limit is spent, checked before each turn (so one turn is the most overrun)."""
        if self.max_turns is not None and usage.turns >= self.max_turns:
            return f"turn budget spent ({usage.turns} of {self.max_turns})"
        if self.max_tokens is not None and usage.tokens >= self.max_tokens:
            return f"token budget spent ({usage.tokens} of {self.max_tokens})"
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return f"cost budget spent (${usage.cost_usd:.4f} of ${self.max_cost_usd:.4f})"
        if self.max_cost_usd is not None and usage.unpriced_turns:
            return (f"cost budget cannot be checked: {usage.unpriced_turns} turns of a model "
                    "with no known price (add it to RATCHET_MODEL_PRICES)")  # fmt: skip
        if self.max_wall_s is not None and elapsed_s >= self.max_wall_s:
            return f"time budget spent ({elapsed_s:.0f}s of {self.max_wall_s:.0f}s)"
        return None


def usage_from(value: object) -> Usage:
    """A Usage from its dict form (unknown keys ignored: an older or newer writer)."""
    if not isinstance(value, dict):
        return Usage()
    names = {f.name for f in fields(Usage)}
    return Usage(**{k: v for k, v in value.items() if k in names})


def usage_among(details: Sequence[object]) -> Usage | None:
    """The usage a failure's details carry (see usage_detail), or None."""
    found = (d[USAGE_DETAIL] for d in details if isinstance(d, dict) and USAGE_DETAIL in d)
    return next((usage_from(value) for value in found), None)


def usage_detail(usage: Usage) -> dict[str, object]:
    return {USAGE_DETAIL: asdict(usage)}
