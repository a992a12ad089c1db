"""A model activity's paid calls reach the run whatever happens after them: in its result, or in
its error's details when it fails, summed over every attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import permanent_errors
from activities.paid import CallLedger, charge, paid
from agents.ledger import DEFAULT_PRICES, TokenCounts
from agents.model import ModelCall, PolicyError, TurnResult
from contracts.budget import USAGE_DETAIL, Usage, usage_from
from ratchet.artifacts import FilesystemArtifactStore

CALL = ModelCall("code", "s", [])


class Sonnet:
    provider, label = "anthropic", "test"

    def model_for(self, purpose: str) -> str:
        return "claude-sonnet-5-5"

    def limit_for(self, purpose: str) -> tuple[int, int]:
        return 1000, 1000

    async def turn(self, call: ModelCall) -> TurnResult:
        return TurnResult([], counts=TokenCounts(1000, 100))


@dataclass(frozen=True)
class Out:
    usage: Usage = field(default_factory=Usage)


class Acts:
    def __init__(self, home: Path, fail: Exception | None) -> None:
        self.ledger = CallLedger(FilesystemArtifactStore(home))
        self.prices = DEFAULT_PRICES
        self.fail = fail

    @paid
    @permanent_errors
    async def act(self, calls: int) -> Out:
        for _ in range(calls):
            charge(Sonnet(), CALL, TurnResult([], model="claude-sonnet-5-5",
                                              counts=TokenCounts(1000, 100)))  # fmt: skip
        if self.fail is not None:
            raise self.fail
        return Out()


ONE_CALL = 1000 * 2 / 1e6 + 100 * 10 / 1e6


async def test_the_result_carries_every_call_of_the_activity(tmp_path: Path) -> None:
    out = await ActivityEnvironment().run(Acts(tmp_path, None).act, 2)
    assert out.usage.turns == 2 and out.usage.cost_usd == pytest.approx(2 * ONE_CALL)


async def test_a_permanent_failure_carries_what_it_paid_for(tmp_path: Path) -> None:
    acts = Acts(tmp_path, PolicyError("the answer did not match its schema, twice"))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.act, 2)
    err = caught.value
    assert err.non_retryable and err.type == "PolicyError" and "twice" in err.message
    (detail,) = [d for d in err.details if isinstance(d, dict) and USAGE_DETAIL in d]
    assert usage_from(detail[USAGE_DETAIL]).turns == 2


async def test_a_retried_attempt_reports_the_earlier_attempts_once(tmp_path: Path) -> None:
    failing = Acts(tmp_path, RuntimeError("worker lost the transcript store"))
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as caught:  # retryable: its usage rides along
        await env.run(failing.act, 1)
    assert not caught.value.non_retryable and caught.value.type == "RuntimeError"
    # The same activity (same workflow run and activity id), tried again: one more call.
    out = await env.run(Acts(tmp_path, None).act, 1)
    assert out.usage.turns == 2


async def test_an_activity_that_paid_nothing_fails_as_it_was(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await ActivityEnvironment().run(Acts(tmp_path, RuntimeError("boom")).act, 0)


def test_the_ledger_adds_up_one_activity_across_workers_that_share_only_the_store(
    tmp_path: Path,
) -> None:
    store = FilesystemArtifactStore(tmp_path / "store")
    CallLedger(store).record("wf", "run", "7", Usage(turns=1, input_tokens=5))
    CallLedger(store).record("wf", "run", "7", Usage(turns=1, input_tokens=6))  # a retry elsewhere
    CallLedger(store).record("wf", "run", "8", Usage(turns=1, input_tokens=100))
    store.claim(CallLedger._prefix("wf", "run", "7") + "torn", b'{"turns": 1, "inp')
    assert CallLedger(store).total("wf", "run", "7") == Usage(turns=2, input_tokens=11)
    assert CallLedger(store).total("wf", "run", "9") == Usage()
