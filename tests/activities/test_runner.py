"""How the worker runs repository code (activities/runner.py), from its settings as worker.py
reads them: the sandbox chosen, re-runs of failed tests, the agent's shell limit and the
environment build's limit each reach the activities that use them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from contracts.agent import ToolCall, ToolInput
from contracts.runs import EnvironmentSpec
from contracts.steps import EnvironmentInput, PrepareInput
from contracts.steps import TestInput as StepInput
from tests.activities.conftest import WHEN, World
from tests.utils.repos import PY_REPO, make_repo

FLAKY = PY_REPO | {
    "tests/test_flaky.py": "import os\n\n\ndef test_flaky():\n"
    "    # Fails the first time it runs in this workspace, passes after.\n"
    "    if not os.path.exists('seen'):\n"
    "        open('seen', 'w').close()\n"
    "        raise AssertionError('first run fails')\n",
}
FLAKY_ID = "tests/test_flaky.py::test_flaky"


async def test_a_failed_test_is_rerun_as_often_as_the_worker_says(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", FLAKY)
    rerun = make_world()  # RATCHET_FLAKY_RERUNS defaults to 1
    assert rerun.runner.reruns == 1
    run = await rerun.prepare(repo)
    report = await rerun.run(
        rerun.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "t")
    )
    assert report.passed and report.flaky == [FLAKY_ID]

    never = make_world(flaky_reruns=0)
    run = await never.prepare(repo, run_id="task-000000000002")
    report = await never.run(
        never.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "t")
    )
    assert not report.passed and report.flaky == [] and report.failed_count == 1


async def test_without_a_sandbox_every_report_says_so(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    world = make_world(sandbox="none")
    assert world.runner.sandbox.name == "none"
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "t")
    )
    assert report.passed
    assert report.isolation.startswith("NONE: no sandbox in force")


async def test_a_shell_command_of_the_agent_is_killed_at_the_tool_limit(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    world = make_world(tool_timeout_s=1)
    assert world.runner.tool_timeout_s == 1
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    call = ToolCall("toolu_1", "bash", json.dumps({"command": "echo started; sleep 20"}))
    started = time.monotonic()
    # The test timeout the workflow gives a tool call is far longer: the worker's limit wins.
    out = await world.run(world.agent.tool, ToolInput(run, run.base_sha, call, "true", 600))
    assert time.monotonic() - started < 10
    assert out.result.content.startswith("timed out (killed), killed by timeout\n")
    assert "started" in out.result.content and not out.result.is_error


async def test_an_environment_build_is_killed_at_its_limit_and_fails_for_good(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    world = make_world(env_timeout_s=1)
    assert world.runner.env_limits.timeout_s == 1
    repo = make_repo(tmp_path / "calc", PY_REPO)
    spec = EnvironmentSpec(setup=["sleep 20"])
    prepared = await world.run(world.forward.prepare, PrepareInput(
        "task-0a1b2c3d4e5f", str(repo), "HEAD", None, WHEN, environment=spec,
    ))  # fmt: skip
    started = time.monotonic()
    with pytest.raises(ApplicationError) as caught:
        await world.run(
            world.envs.environment, EnvironmentInput(prepared.run, prepared.run.base_sha)
        )
    assert time.monotonic() - started < 15
    err = caught.value
    assert err.non_retryable and err.type == "EnvironmentBuildFailed"
    assert "` timed out; the log ends with" in err.message
