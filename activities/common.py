"""Helpers every activity class uses."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import ParamSpec, Protocol, TypeVar

from opentelemetry import trace
from temporalio import activity

from agents.ledger import Price, TokenCounts, cost_usd
from contracts.budget import Usage
from contracts.runs import RunRef
from ratchet.artifacts import ArtifactStore
from ratchet.metrics import MODEL_COST, MODEL_TOKENS
from ratchet.telemetry import RUN_ID_ATTRIBUTE

P = ParamSpec("P")
R = TypeVar("R")


class HasGoal(Protocol):
    @property
    def goal(self) -> str: ...
    @property
    def run(self) -> RunRef: ...


G = TypeVar("G", bound=HasGoal)


def with_goal(store: ArtifactStore, arg: G) -> G:
    """`arg` with its task's goal: sent along (runs recorded before goals travelled by
    reference), or read from the artifact the prepare step kept."""
    if arg.goal or not arg.run.goal_ref:
        return arg
    return replace(arg, goal=store.get_text(arg.run.goal_ref))  # type: ignore[type-var]


def tag_span(run_id: str) -> None:
    trace.get_current_span().set_attribute(RUN_ID_ATTRIBUTE, run_id)


def model_usage(
    provider: str,
    requested: str,
    answered: str,
    counts: TokenCounts,
    prices: dict[str, Price],
) -> Usage:
    """One model call's usage and cost, recorded on the current span and in the metrics.

    The span carries OpenTelemetry's gen_ai attributes and OpenInference's (which Arize Phoenix
    shows as the model and its token counts)."""
    # The answer names the exact model that served it; a price is looked up by exact id.
    model = answered or requested
    cost = cost_usd(model, counts, prices)
    if cost is None and answered and answered != requested:
        cost = cost_usd(requested, counts, prices)
    usage = Usage(
        turns=1, input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
        cache_creation_input_tokens=counts.cache_creation_input_tokens,
        cache_read_input_tokens=counts.cache_read_input_tokens,
        cost_usd=cost or 0.0, unpriced_turns=int(cost is None),
    )  # fmt: skip
    system = "openai" if provider == "openai-compatible" else "anthropic"
    prompt = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    trace.get_current_span().set_attributes({
        "gen_ai.system": system,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": requested,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_creation_input_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
        "ratchet.cost_usd": usage.cost_usd,
        "ratchet.price_known": cost is not None,
        "openinference.span.kind": "LLM",
        "llm.provider": system,
        "llm.model_name": model,
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": usage.output_tokens,
        "llm.token_count.total": prompt + usage.output_tokens,
        "llm.token_count.prompt_details.cache_read": usage.cache_read_input_tokens,
        "llm.token_count.prompt_details.cache_write": usage.cache_creation_input_tokens,
        "llm.cost.total": usage.cost_usd,
    })  # fmt: skip
    for kind, amount in (("input", usage.input_tokens), ("output", usage.output_tokens),
                         ("cache_write", usage.cache_creation_input_tokens),
                         ("cache_read", usage.cache_read_input_tokens)):  # fmt: skip
        if amount:
            MODEL_TOKENS.add(amount, {"gen_ai.request.model": model, "gen_ai.token.type": kind})
    MODEL_COST.add(usage.cost_usd, {"gen_ai.request.model": model})
    return usage


@contextlib.asynccontextmanager
async def heartbeating(every_s: float = 1.0) -> AsyncIterator[None]:
    """Heartbeat while the body waits (a model call): a worker that dies mid-call is noticed
    within the step's heartbeat timeout, not at the end of its start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()  # the SDK batches these; calling often costs nothing
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def heartbeats(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """An activity that heartbeats for as long as it runs (see `heartbeating`)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        async with heartbeating():
            return await fn(*args, **kwargs)

    return wrapper
