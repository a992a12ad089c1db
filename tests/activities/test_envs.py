"""The environment step (activities/envs.py): the repository's environment built once per key in
the sandbox, found built after that, and a failed build failing the step for good with its log
kept in the artifact store."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from contracts.runs import EnvironmentSpec
from contracts.steps import EnvironmentInput, PrepareInput
from tests.activities.conftest import WHEN, World
from tests.utils.repos import PY_REPO, make_repo


async def test_the_default_environment_is_built_once_then_found(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    prepared = await world.run(
        world.forward.prepare, PrepareInput("task-0a1b2c3d4e5f", str(repo), "HEAD", None, WHEN)
    )
    arg = EnvironmentInput(prepared.run, prepared.run.base_sha)
    built = await world.run(world.envs.environment, arg)
    assert not built.cache_hit and built.duration_s > 0
    assert built.environment.source.startswith("default: no manifest with dependencies")
    assert built.environment.setup == []
    assert built.log_ref is not None and " -m venv" in world.store.get_text(built.log_ref)
    assert (world.settings.home / "envs" / built.environment.key / "ratchet-env.json").is_file()

    again = await world.run(world.envs.environment, arg)
    assert again.cache_hit and again.log_ref is None
    assert again.environment == built.environment


async def test_a_requested_setup_runs_in_the_build_and_heartbeats(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    spec = EnvironmentSpec(setup=["echo the-setup-ran-here"])
    prepared = await world.run(world.forward.prepare, PrepareInput(
        "task-0a1b2c3d4e5f", str(repo), "HEAD", None, WHEN, environment=spec,
    ))  # fmt: skip
    world.heartbeats.clear()
    built = await world.run(
        world.envs.environment, EnvironmentInput(prepared.run, prepared.run.base_sha)
    )
    assert built.environment.source == "request"
    assert built.environment.setup == ["echo the-setup-ran-here"]
    assert built.log_ref is not None
    log = world.store.get_text(built.log_ref)
    assert "$ echo the-setup-ran-here\n" in log and "\nthe-setup-ran-here\n" in log
    # A venv with pip takes seconds to make: the build says it is alive meanwhile.
    assert len(world.heartbeats) >= 2


async def test_a_failed_setup_fails_the_step_for_good_and_keeps_its_log(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    spec = EnvironmentSpec(setup=["echo about to fail; exit 3"])
    prepared = await world.run(world.forward.prepare, PrepareInput(
        "task-0a1b2c3d4e5f", str(repo), "HEAD", None, WHEN, environment=spec,
    ))  # fmt: skip
    with pytest.raises(ApplicationError) as caught:
        await world.run(
            world.envs.environment, EnvironmentInput(prepared.run, prepared.run.base_sha)
        )
    err = caught.value
    assert err.non_retryable and err.type == "EnvironmentBuildFailed"
    assert "environment setup failed (request): `echo about to fail; exit 3` exited 3" in (
        err.message
    )
    ref = err.message.rsplit("[build log: ", 1)[1].removesuffix("]")
    assert "$ echo about to fail; exit 3\nabout to fail\n" in world.store.get_text(ref)
    # Nothing half-built is left to be found as if it were finished.
    assert not list((world.settings.home / "envs").glob("*/ratchet-env.json"))
