"""Asking a model for one answer, whichever provider serves it: every answer is charged as it
arrives, and an answer cut off by its token limit is asked again once with a larger one, then
refused — never retried without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from agents.model import Model, ModelCall, PolicyError, TurnResult

Charge = Callable[[Model, ModelCall, TurnResult], None]
"""Records one answered call in the run's ledger (called before anything can fail)."""


class AnswerCutOff(PolicyError):
    """The answer reached its token limit twice: asking the same again will not help."""


async def ask(model: Model, call: ModelCall, charge: Charge) -> TurnResult:
    limit, ceiling = model.limit_for(call.purpose)
    call = replace(call, max_tokens=call.max_tokens or limit or None)
    turn = await model.turn(call)
    charge(model, call, turn)
    if turn.stop_reason != "max_tokens":
        return turn
    asked = turn.max_tokens or call.max_tokens or limit
    larger = min(asked * 4, ceiling)
    if larger > asked:
        call = replace(call, max_tokens=larger)
        turn = await model.turn(call)
        charge(model, call, turn)
        if turn.stop_reason != "max_tokens":
            return turn
    raise AnswerCutOff(
        f"the {call.purpose} answer was cut off at its token limit ({turn.max_tokens or asked} "
        "tokens) twice; raise max_tokens in RATCHET_MODELS or narrow the task"
    )
