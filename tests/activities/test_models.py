"""Which model serves a step (activities/models.py), as the worker composes it from its
settings: the scripted policy (a test double) from the script the run carries, the providers
the worker has keys and addresses for, and a clear refusal of the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from agents.claude import AnthropicModel
from agents.openai_compat import OpenAICompatModel
from agents.scripted import ScriptedModel
from contracts.runs import PolicyChoice
from contracts.steps import PlanInput
from tests.activities.conftest import World
from tests.utils.repos import PY_REPO, make_repo


def test_the_worker_serves_the_providers_its_settings_reach(
    make_world: Callable[..., World],
) -> None:
    bare = make_world()
    assert bare.models.served == {}
    both = make_world(anthropic_api_key=SecretStr("sk-test"),
                      openai_base_url="http://127.0.0.1:9/v1")  # fmt: skip
    assert isinstance(both.models.choose(PolicyChoice("anthropic")), AnthropicModel)
    assert isinstance(both.models.choose(PolicyChoice("openai-compatible")), OpenAICompatModel)
    scripted = both.models.choose(both.script("plan = 'p'\n[[patch]]\npatch = ''\n"))
    assert isinstance(scripted, ScriptedModel) and scripted.script.plan == "p"


@pytest.mark.parametrize(
    ("policy", "kind", "message"),
    [
        (
            PolicyChoice("openai-compatible"),
            "PolicyError",
            "the worker has no "
            "RATCHET_OPENAI_BASE_URL, so it cannot run the openai-compatible policy",
        ),
        (PolicyChoice("scripted", "sha256:" + "0" * 64), "ArtifactNotFound", "no artifact sha256:"),
    ],
    ids=["openai-compatible-without-an-address", "scripted-with-a-lost-script"],
)
async def test_a_model_the_worker_cannot_have_fails_the_step_for_good(
    world: World, tmp_path: Path, policy: PolicyChoice, kind: str, message: str
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.plan, PlanInput(run, "add mul", policy))
    err = caught.value
    assert err.non_retryable and err.type == kind and err.message.startswith(message)


async def test_a_script_that_does_not_parse_fails_the_step_for_good(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    broken = PolicyChoice("scripted", world.store.put_text("[[patch]\n"))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.plan, PlanInput(run, "add mul", broken))
    err = caught.value
    assert err.non_retryable and err.type == "PolicyError"
    assert err.message.startswith("policy script is not valid TOML")
