"""The agent loop's two steps (activities/agent.py): a model turn with the scripted policy (a
test double that replays a script) and a tool call run by the gym on the run's workspace."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from agents import transcript
from contracts.agent import ToolCall, ToolInput, ToolResult, TurnInput
from contracts.runs import PolicyChoice, RunRef
from gym.git import git
from tests.activities.conftest import World
from tests.utils.repos import PY_REPO, make_repo

SCRIPT = """
plan = "add mul"
[[patch]]
[[patch.turn]]
text = "Look first."
call = [{ tool = "bash", input = { command = "cat calc.py" } }]
[[patch.turn]]
call = [{ tool = "run_tests", input = {} }]
"""
MUL = (
    "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a + b\n=======\ndef add(a, b):\n"
    "    return a + b\n\n\ndef mul(a, b):\n    return a * b\n>>>>>>> REPLACE\n"
)


def turn(world: World, run: RunRef, **changes: object) -> TurnInput:
    first = TurnInput(
        run, "code", "scripted", None, [], "add mul", world.store.put_text("the plan"), None,
        run.base_sha, world.script(SCRIPT), "patch.1",
    )  # fmt: skip
    return replace(first, **changes)  # type: ignore[arg-type]


def tool(run: RunRef, name: str, args: object, snapshot: str | None = None) -> ToolInput:
    call = ToolCall(f"toolu_{name}_1", name, json.dumps(args))
    return ToolInput(run, snapshot or run.base_sha, call, "python -m pytest -q", 60)


async def test_scripted_turns_come_back_as_the_script_says_each_counted_once(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    world.heartbeats.clear()
    first = await world.run(world.agent.model_turn, turn(world, run))
    assert [(c.id, c.name, json.loads(c.input_json)) for c in first.tool_calls] == [
        ("toolu_patch_1_0_0", "bash", {"command": "cat calc.py"})
    ]
    assert (first.stop_reason, first.text, first.model) == ("tool_use", "Look first.", "scripted")
    assert first.usage.turns == 1 and first.usage.cost_usd == 0 and first.usage.tokens == 0
    assert world.heartbeats, "a model step heartbeats while it waits for its answer"
    messages = transcript.loads(world.store.get_text(first.transcript_ref))
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "<goal>add mul</goal>" in json.dumps(messages[0]) and "calc.py" in json.dumps(
        messages[0]
    )

    # The next turn is another activity: the answer to the first call goes with it.
    env = world.env()
    env.info = replace(env.info, activity_id="2")
    second = await env.run(world.agent.model_turn, turn(
        world, run, transcript_ref=first.transcript_ref,
        pending_results=[ToolResult("toolu_patch_1_0_0", "def add(a, b): ...")],
    ))  # fmt: skip
    assert [c.name for c in second.tool_calls] == ["run_tests"]
    assert second.usage.turns == 1  # its own call only: the first was the first activity's
    messages = transcript.loads(world.store.get_text(second.transcript_ref))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_patch_1_0_0"

    # The script's turns are done: the loop is told to submit.
    env.info = replace(env.info, activity_id="3")
    third = await env.run(world.agent.model_turn, turn(
        world, run, transcript_ref=second.transcript_ref,
        pending_results=[ToolResult(second.tool_calls[0].id, "PASSED")],
    ))  # fmt: skip
    assert [c.name for c in third.tool_calls] == ["submit"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (PolicyChoice("scripted"), "the scripted policy needs a policy script"),
        (PolicyChoice("anthropic"), "the worker has no ANTHROPIC_API_KEY"),
        (PolicyChoice("gpt-9"), "unknown policy 'gpt-9'"),
    ],
    ids=["scripted-without-its-script", "anthropic-without-a-key", "unknown"],
)
async def test_a_policy_this_worker_cannot_run_fails_the_turn_for_good(
    world: World, tmp_path: Path, policy: PolicyChoice, message: str
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.agent.model_turn, turn(world, run, policy=policy))
    err = caught.value
    assert err.non_retryable and err.type == "PolicyError"
    assert err.message.startswith(message)


async def test_a_script_with_no_such_round_fails_the_turn_for_good(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.agent.model_turn, turn(world, run, script_key="patch.2"))
    assert caught.value.non_retryable and caught.value.type == "PolicyError"
    assert caught.value.message == "the script has 1 patch rounds; round 2 was asked for"


async def test_apply_patch_makes_a_snapshot_on_top_of_the_one_it_was_given(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    out = await world.run(world.agent.tool, tool(run, "apply_patch", {"patch": MUL}))
    assert not out.result.is_error
    assert out.result.content == "apply_patch: changed calc.py"
    assert out.result.tool_use_id == "toolu_apply_patch_1"
    mirror = Path(run.mirror)
    assert out.snapshot != run.base_sha
    assert git("rev-parse", f"{out.snapshot}^", git_dir=mirror) == run.base_sha
    assert "return a * b" in git("show", f"{out.snapshot}:calc.py", git_dir=mirror)
    # The next call sees the workspace at that snapshot.
    read = await world.run(world.agent.tool, tool(run, "read_file", {"path": "calc.py"},
                                                  out.snapshot))  # fmt: skip
    assert "def mul(a, b):" in read.result.content and read.snapshot == out.snapshot


async def test_edits_the_rules_refuse_write_nothing(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    protected = await world.run(world.agent.tool, tool(
        run, "create_file", {"path": "ratchet.toml", "content": "[tests]\ncommand = 'true'\n"},
    ))  # fmt: skip
    assert protected.result.is_error and protected.snapshot == run.base_sha
    assert "nothing was written" in protected.result.content
    escape = await world.run(world.agent.tool, tool(run, "apply_patch", {
        "patch": "../outside.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n",
    }))  # fmt: skip
    assert escape.result.is_error and escape.snapshot == run.base_sha
    assert escape.result.content.startswith("the patch did not apply, nothing was written")
    assert not (tmp_path / "outside.py").exists()
    unknown = await world.run(world.agent.tool, tool(run, "rm_rf", {"path": "/"}))
    assert unknown.result.is_error and unknown.result.content == "there is no tool 'rm_rf'"


async def test_bash_runs_in_the_sandbox_and_its_changes_become_a_snapshot(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    out = await world.run(world.agent.tool, tool(
        run, "bash", {"command": "echo made > made.txt && cat calc.py && exit 3"},
    ))  # fmt: skip
    assert not out.result.is_error  # a failing command is an answer, not a tool error
    assert out.result.content.startswith("exit 3\n") and "return a + b" in out.result.content
    assert git("show", f"{out.snapshot}:made.txt", git_dir=Path(run.mirror)) == "made"
    empty = await world.run(world.agent.tool, tool(run, "bash", {"command": "  "}))
    assert empty.result.is_error and empty.result.content == "bash needs a non-empty 'command'"


async def test_a_secret_of_the_worker_never_reaches_a_tool_s_answer(
    world: World, tmp_path: Path
) -> None:
    token = world.settings.token  # in the repository, so a command can print it
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO | {"notes.txt": token}))
    for name, args in [
        ("bash", {"command": "cat notes.txt"}),
        ("read_file", {"path": "notes.txt"}),
    ]:
        out = await world.run(world.agent.tool, tool(run, name, args))
        assert token not in out.result.content and "[REDACTED]" in out.result.content, name


async def test_run_tests_answers_with_the_counts_and_a_selection(
    world: World, tmp_path: Path
) -> None:
    files = PY_REPO | {"tests/test_two.py": "def test_one():\n    pass\n\n\n"
                                            "def test_two():\n    assert False\n"}  # fmt: skip
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    whole = await world.run(world.agent.tool, tool(run, "run_tests", {}))
    assert not whole.result.is_error
    assert whole.result.content.startswith("FAILED: 2 passed, 1 failed, 0 errors, 0 flaky (exit 1)")
    assert "failing: tests/test_two.py::test_two" in whole.result.content
    some = await world.run(world.agent.tool, tool(
        run, "run_tests", {"select": ["tests/test_two.py::test_one", "tests/test_calc.py"]}
    ))  # fmt: skip
    assert some.result.content.startswith("PASSED: 2 passed, 0 failed")
    bad = await world.run(world.agent.tool, tool(run, "run_tests", {"select": "tests"}))
    assert bad.result.is_error and "'select' must be a list" in bad.result.content
