"""The forward-planning steps (activities/forward.py): prepare the run's mirror, plan with the
scripted policy (a test double), verify a candidate by the gates from real test and lint runs,
and keep a snapshot's change as a patch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from agents.scripted import TEST_DOUBLE_LABEL
from contracts.agent import ToolCall, ToolInput
from contracts.runs import PolicyChoice, RunRef
from contracts.steps import DiffInput, LintInput, PlanInput, PrepareInput, VerifyInput, VerifyOutput
from contracts.steps import TestInput as StepInput
from gym.git import git
from tests.activities.conftest import WHEN, World
from tests.utils.repos import PY_REPO, make_repo

ADD_MUL = (
    "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a + b\n=======\ndef add(a, b):\n"
    "    return a + b\n\n\ndef mul(a, b):\n    return a * b\n>>>>>>> REPLACE\n\n"
    "tests/test_mul.py\n<<<<<<< SEARCH\n=======\nfrom calc import mul\n\n\ndef test_mul():\n"
    "    assert mul(3, 4) == 12\n>>>>>>> REPLACE\n"
)
WEAKEN = (
    "tests/test_calc.py\n<<<<<<< SEARCH\n    assert add(2, 3) == 5\n=======\n    assert True\n"
    ">>>>>>> REPLACE\n"
)


def prepare_input(path: Path, **changes: object) -> PrepareInput:
    values: dict[str, object] = {
        "run_id": "task-0a1b2c3d4e5f",
        "repo": str(path),
        "base_ref": "HEAD",
        "test_command": None,
        "when": WHEN,
    }
    return PrepareInput(**(values | changes))  # type: ignore[arg-type]


async def test_prepare_mirrors_the_repository_and_detects_its_test_command(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "calc",
        PY_REPO | {"ratchet.toml": "[performance]\ncommand = 'python -c \"print(1)\"'\n"},
    )
    prepared = await world.run(world.forward.prepare, prepare_input(repo))
    assert (prepared.test_command, prepared.test_command_source) == (
        "python -m pytest -q",
        "detected: Python project",
    )
    assert prepared.benchmark
    run = prepared.run
    assert Path(run.mirror).parent == world.settings.home / "mirrors"
    assert run.base_sha == git("rev-parse", "HEAD", cwd=repo)
    assert git("rev-parse", "main", git_dir=Path(run.mirror)) == run.base_sha
    given = await world.run(world.forward.prepare, prepare_input(repo, test_command="make check"))
    assert (given.test_command, given.test_command_source) == ("make check", "task")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"repo": "/no/such/repository"}, "no such directory: /no/such/repository"),
        ({"base_ref": "v9.9"}, "unknown ref 'v9.9' in "),
        ({"start_snapshot": "1" * 40}, f"snapshot '{'1' * 40}' is neither in "),
    ],
    ids=["missing-repository", "unknown-ref", "foreign-snapshot"],
)
async def test_what_prepare_cannot_use_fails_the_run_for_good(
    world: World, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.prepare, prepare_input(repo, **changes))
    err = caught.value
    assert err.non_retryable and err.type == "BadRepository"
    assert err.message.startswith(message)


async def test_a_repository_with_no_tests_to_run_says_how_to_name_them(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "docs", {"README.md": "# docs only\n"})
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.prepare, prepare_input(repo))
    assert caught.value.non_retryable and caught.value.type == "BadRepository"
    assert caught.value.message.startswith("cannot tell how to run this repository's tests")


async def test_the_plan_is_the_scripts_kept_as_an_artifact(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script("plan = '''1. add mul\n2. test it'''\n[[patch]]\npatch = ''\n")
    world.heartbeats.clear()
    out = await world.run(world.forward.plan, PlanInput(run, "add mul", policy))
    assert world.store.get_text(out.plan_ref) == "1. add mul\n2. test it"
    assert out.policy_label == TEST_DOUBLE_LABEL
    assert out.usage.turns == 1 and out.usage.cost_usd == 0
    assert world.heartbeats


async def test_a_plan_from_a_worker_without_the_model_fails_for_good(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.plan, PlanInput(run, "add mul", PolicyChoice("anthropic")))
    err = caught.value
    assert err.non_retryable and err.type == "PolicyError"
    assert err.message == (
        "the worker has no ANTHROPIC_API_KEY, so it cannot run the anthropic policy"
    )


async def candidate(world: World, run: RunRef, patch: str) -> str:
    call = ToolCall("toolu_1", "apply_patch", json.dumps({"patch": patch}))
    out = await world.run(world.agent.tool, ToolInput(run, run.base_sha, call, "true", 60))
    assert not out.result.is_error, out.result.content
    return str(out.snapshot)


async def verify(world: World, run: RunRef, snapshot: str) -> VerifyOutput:
    command = "python -m pytest -q"
    baseline = await world.run(world.tests.run_tests,
                               StepInput(run, run.base_sha, command, 60, "baseline"))  # fmt: skip
    tests = await world.run(world.tests.run_tests, StepInput(run, snapshot, command, 60, "test"))
    base_lint = await world.run(world.tests.lint, LintInput(run, run.base_sha))
    lint = await world.run(world.tests.lint, LintInput(run, snapshot))
    out: VerifyOutput = await world.run(world.forward.verify, VerifyInput(
        run, snapshot, tests, baseline, lint=lint, baseline_lint=base_lint,
    ))  # fmt: skip
    return out


async def test_a_good_candidate_passes_every_gate(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    out = await verify(world, run, await candidate(world, run, ADD_MUL))
    assert out.passed and out.feedback_ref is None
    gates = {g.name: g for g in out.gates}
    assert list(gates) == ["tests", "tamper", "diff_budget", "protected_paths", "lint",
                           "observability"]  # fmt: skip
    assert all(g.passed for g in gates.values())
    assert gates["diff_budget"].detail.startswith("2 files, 9 lines changed")


async def test_a_weakened_test_fails_tamper_and_the_feedback_says_so(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    out = await verify(world, run, await candidate(world, run, WEAKEN))
    assert not out.passed
    gates = {g.name: g for g in out.gates}
    assert not gates["tamper"].passed and gates["tests"].passed
    assert gates["tamper"].detail.startswith(
        "existing tests were changed, which could weaken them: tests/test_calc.py (modified)"
    )
    feedback = world.store.get_text(out.feedback_ref or "")
    assert feedback.startswith("Verification failed. Gates:\n")
    assert "- tamper: FAILED: existing tests were changed" in feedback


async def test_a_snapshot_is_kept_as_its_patch(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    snapshot = await candidate(world, run, ADD_MUL)
    out = await world.run(world.forward.snapshot_diff, DiffInput(run, snapshot))
    assert out.files_changed == 2
    patch = world.store.get_text(out.patch_ref)
    assert "+def mul(a, b):" in patch and "+++ b/tests/test_mul.py" in patch
