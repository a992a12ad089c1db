"""What a failed step tells Temporal (activities/errors.py): a failure no retry can fix fails at
once (non-retryable, its kind as the type, its message kept), a model call that may succeed
later is retried after the server's Retry-After, and what the call cost rides along. The model
servers are fakes on loopback reached through the real SDK and HTTP client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from contracts.budget import USAGE_DETAIL, usage_from
from contracts.roles import MemoryRecordInput
from contracts.runs import PolicyChoice, RunRef
from contracts.steps import PlanInput, TestInput
from tests.activities.conftest import World
from tests.conftest import free_port
from tests.utils.fake_anthropic import FakeMessagesApi, error, text_message
from tests.utils.repos import PY_REPO, make_repo

OPENAI = PolicyChoice("openai-compatible")
ANTHROPIC = PolicyChoice("anthropic")


async def planning(make_world: Callable[..., World], tmp_path: Path,
                   **settings: object) -> tuple[World, RunRef]:  # fmt: skip
    world = make_world(**settings)
    return world, await world.prepare(make_repo(tmp_path / "calc", PY_REPO))


async def failed_plan(world: World, run: RunRef, policy: PolicyChoice) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.plan, PlanInput(run, "add mul", policy))
    return caught.value


async def test_an_overloaded_model_is_retried_after_what_the_server_asked(
    make_world: Callable[..., World], tmp_path: Path, anthropic_fake: FakeMessagesApi
) -> None:
    overloaded = error(529, "overloaded_error", "Overloaded")
    anthropic_fake.answers = [(*overloaded, {"retry-after": "7"})]
    world, run = await planning(make_world, tmp_path, anthropic_api_key=SecretStr("sk-test"))
    err = await failed_plan(world, run, ANTHROPIC)
    assert not err.non_retryable and err.type == "ModelOverloaded"
    assert err.next_retry_delay == timedelta(seconds=7)
    assert err.message.startswith("Anthropic API 529: ") and "Overloaded" in err.message
    assert len(anthropic_fake.requests) == 1  # the SDK does not retry: Temporal does


async def test_a_request_the_model_api_refuses_fails_for_good(
    make_world: Callable[..., World], tmp_path: Path, anthropic_fake: FakeMessagesApi
) -> None:
    anthropic_fake.answers = [error(400, "invalid_request_error", "prompt is too long")]
    world, run = await planning(make_world, tmp_path, anthropic_api_key=SecretStr("sk-test"))
    err = await failed_plan(world, run, ANTHROPIC)
    assert err.non_retryable and err.type == "ModelRequestRejected"
    assert "prompt is too long" in err.message
    (detail,) = [d for d in err.details if isinstance(d, dict) and USAGE_DETAIL in d]
    assert usage_from(detail[USAGE_DETAIL]).turns == 0  # refused: nothing was paid for


async def test_an_answered_call_is_priced_by_the_model_that_answered(
    make_world: Callable[..., World], tmp_path: Path, anthropic_fake: FakeMessagesApi
) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000}
    anthropic_fake.answers = [text_message("1. add mul", usage)]
    world, run = await planning(make_world, tmp_path, anthropic_api_key=SecretStr("sk-test"))
    out = await world.run(world.forward.plan, PlanInput(run, "add mul", ANTHROPIC))
    assert world.store.get_text(out.plan_ref) == "1. add mul"
    assert (out.usage.turns, out.usage.input_tokens, out.usage.output_tokens) == (
        1,
        1_000_000,
        100_000,
    )
    # The fake answers as "claude-fake", which has no price: the requested model's is used.
    per_input, per_output, _, _ = world.forward.prices[anthropic_fake.requests[0]["body"]["model"]]
    assert out.usage.cost_usd == pytest.approx(per_input + per_output * 0.1)
    assert out.usage.cost_usd > 0 and out.usage.unpriced_turns == 0


async def test_an_unreachable_model_server_is_retried(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    world, run = await planning(make_world, tmp_path, openai_base_url=closed)
    err = await failed_plan(world, run, OPENAI)
    assert not err.non_retryable and err.type == "ModelUnreachable"
    assert err.message.startswith("cannot reach the model server")


async def test_a_rate_limited_self_hosted_model_is_retried_after_its_retry_after(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    fake = FakeMessagesApi([(429, {"error": "slow down"}, {"retry-after": "3"})])
    with fake.serve() as url:
        world, run = await planning(make_world, tmp_path, openai_base_url=f"{url}/v1")
        err = await failed_plan(world, run, OPENAI)
    assert not err.non_retryable and err.type == "ModelServerError"
    assert err.next_retry_delay == timedelta(seconds=3)
    assert err.message.startswith("model server 429: ")


async def test_an_artifact_that_is_not_there_fails_the_step_for_good(
    world: World, tmp_path: Path
) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.roles.memory_record,
                        MemoryRecordInput("task-1", str(tmp_path), missing))  # fmt: skip
    err = caught.value
    assert err.non_retryable and err.type == "ArtifactNotFound"
    assert err.message == f"no artifact {missing}"


async def test_a_snapshot_that_is_not_in_the_mirror_fails_the_step_for_good(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    missing = "f" * 40
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.tests.run_tests,
                        TestInput(run, missing, "python -m pytest -q", 60, "baseline"))  # fmt: skip
    err = caught.value
    assert err.non_retryable and err.type == "BadRepository"
    assert err.message.startswith(f"snapshot '{missing}' is neither in ")
