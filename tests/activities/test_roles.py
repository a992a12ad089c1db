"""The structured roles and the red team's steps (activities/roles.py): answers of the scripted
policy (a test double) checked against each role's schema, the red team's tests run in a
workspace of their own, the valid ones delivered, and the repository's memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from contracts.budget import USAGE_DETAIL, usage_from
from contracts.roles import (
    AddTestsInput,
    AdversarialInput,
    MemoryReadInput,
    MemoryRecordInput,
    RoleInput,
)
from contracts.runs import PolicyChoice, RunRef
from gym.git import git
from tests.activities.conftest import World
from tests.utils.repos import PY_REPO, make_repo

DRAFT = json.dumps({"lens": "security", "plan": ["validate the inputs", "add mul"],
                    "objections": ["none"]})  # fmt: skip
ATTACK = json.dumps({"tests": [
    {"path": "tests/test_adversarial_holds.py", "rationale": "adds ints",
     "content": "from calc import add\n\n\ndef test_holds():\n    assert add(1, 1) == 2\n"},
    {"path": "tests/test_adversarial_breaks.py", "rationale": "adds strings",
     "content": "from calc import add\n\n\ndef test_breaks():\n    assert add('a', 1) == 'a1'\n"},
]})  # fmt: skip


def script(**answers: list[str]) -> str:
    lines = ["[[patch]]", "patch = ''"]
    for key, texts in answers.items():
        lines += [f"[roles.{key}]", "answers = [" + ", ".join(f"'''{t}'''" for t in texts) + "]"]
    return "\n".join(lines) + "\n"


def role(run: RunRef, policy: PolicyChoice, name: str, key: str, **extra: object) -> RoleInput:
    return RoleInput(run, name, key, policy, 0, "add mul(a, b)", **extra)  # type: ignore[arg-type]


async def test_a_perspective_answers_by_its_schema_and_is_counted(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(**{"perspective.security": [DRAFT]}))
    world.heartbeats.clear()
    out = await world.run(world.roles.role_call, role(
        run, policy, "perspective", "perspective.security", lens="security",
    ))  # fmt: skip
    assert out.summary == "security: 2 steps" and out.consumed == 1
    assert json.loads(world.store.get_text(out.answer_ref)) == json.loads(DRAFT)
    assert world.store.get_text(out.text_ref) == "## security\n1. validate the inputs\n2. add mul"
    assert out.usage.turns == 1 and out.usage.cost_usd == 0
    assert world.heartbeats


async def test_a_malformed_answer_is_asked_again_once_and_both_calls_count(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(**{"perspective.security": ['{"lens": 1}', DRAFT]}))
    out = await world.run(world.roles.role_call, role(
        run, policy, "perspective", "perspective.security", lens="security",
    ))  # fmt: skip
    assert out.consumed == 2 and out.usage.turns == 2
    assert out.summary == "security: 2 steps"


async def test_two_malformed_answers_fail_the_role_for_good_with_what_they_cost(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(**{"perspective.security": ["not json", '{"plan": []}']}))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.roles.role_call, role(
            run, policy, "perspective", "perspective.security", lens="security",
        ))  # fmt: skip
    err = caught.value
    assert err.non_retryable and err.type == "PolicyError"
    (detail,) = [d for d in err.details if isinstance(d, dict) and USAGE_DETAIL in d]
    assert usage_from(detail[USAGE_DETAIL]).turns == 2


async def test_an_unknown_role_fails_for_good(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(nope=['{"claims": []}']))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.roles.role_call, role(run, policy, "nope", "nope"))
    assert caught.value.non_retryable and caught.value.type == "PolicyError"
    assert caught.value.message == "unknown role 'nope' (no prompt for version 1)"


async def test_claims_from_an_empty_spec_fail_for_good(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(claims=['{"claims": []}']))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.roles.role_call, role(
            run, policy, "claims", "claims", inputs=[world.store.put_text("  \n")],
        ))  # fmt: skip
    assert caught.value.non_retryable and caught.value.type == "PolicyError"
    assert caught.value.message == "there is no spec text to extract claims from"


async def test_the_red_team_runs_apart_and_only_its_passing_tests_are_delivered(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    policy = world.script(script(adversary=[ATTACK]))
    attack = await world.run(world.roles.role_call, role(
        run, policy, "adversary", "adversary", snapshot=run.base_sha,
    ))  # fmt: skip
    assert attack.summary == "2 tests"

    ran = await world.run(world.roles.adversarial_tests, AdversarialInput(
        run, run.base_sha, [attack.answer_ref], timeout_s=60,
    ))  # fmt: skip
    assert (ran.tried, ran.failing) == (2, 1)
    results = {r["path"]: r for r in json.loads(world.store.get_text(ran.results_ref))}
    assert results["tests/test_adversarial_holds.py"]["passed"]
    assert not results["tests/test_adversarial_breaks.py"]["passed"]
    assert "TypeError" in results["tests/test_adversarial_breaks.py"]["failure"]
    assert ran.feedback_ref is not None
    feedback = world.store.get_text(ran.feedback_ref)
    assert "- test_adversarial_breaks: adds strings" in feedback
    assert "test_adversarial_holds" not in feedback

    added = await world.run(
        world.roles.add_tests, AddTestsInput(run, run.base_sha, ran.results_ref)
    )
    assert added.added == ["tests/test_adversarial_holds.py"]
    mirror = Path(run.mirror)
    assert git("rev-parse", f"{added.snapshot}^", git_dir=mirror) == run.base_sha
    shipped = git("ls-tree", "-r", "--name-only", added.snapshot, git_dir=mirror).split()
    assert (
        "tests/test_adversarial_holds.py" in shipped
        and "tests/test_adversarial_breaks.py" not in shipped
    )


async def test_memory_is_recorded_by_version_and_read_back_for_a_goal(
    world: World, tmp_path: Path
) -> None:
    repo = str(make_repo(tmp_path / "calc", PY_REPO))
    empty = await world.run(world.roles.memory_read, MemoryReadInput(repo, "add mul"))
    assert empty.context_ref is None and empty.ids == []
    learned = world.store.put_text(json.dumps({"entries": [
        {"kind": "command", "text": "python -m pytest -q runs the suite"},
        {"kind": "pitfall", "text": "multiply in mul: addition was tried"},
    ], "contradicts": []}))  # fmt: skip
    recorded = await world.run(
        world.roles.memory_record, MemoryRecordInput("task-1", repo, learned)
    )
    assert (recorded.version, recorded.added, recorded.stale) == (1, 2, 0)
    read = await world.run(world.roles.memory_read, MemoryReadInput(repo, "multiply in mul"))
    assert read.ids == ["m2", "m1"]  # the entry sharing words with the goal first
    assert world.store.get_text(read.context_ref or "").startswith("[m2] (pitfall) multiply in mul")
    again = world.store.put_text(json.dumps({"entries": [], "contradicts": ["m2"]}))
    second = await world.run(world.roles.memory_record, MemoryRecordInput("task-2", repo, again))
    assert (second.version, second.added, second.stale) == (2, 0, 1)
    after = await world.run(world.roles.memory_read, MemoryReadInput(repo, "multiply in mul"))
    assert after.ids == ["m1"]  # a contradicted entry is no longer given to planners
