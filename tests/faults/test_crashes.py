"""kill -9 the worker in the middle of a patch, a test run and a model call: another worker
finishes the run, and nothing is done twice that shows (one branch, one commit, one patch, no
model turn paid for again)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.results import TaskResult, TaskState
from contracts.runs import FORWARD_WORKFLOW, PolicyChoice, TaskInput
from gym.git import git
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings
from ratchet.traces import load_spans
from tests.faults.harness import kill, start_worker, stop, wait_for_step
from tests.utils.fake_anthropic import FakeMessagesApi
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.test_agent import happy_path


def _task(repo: Path, policy: PolicyChoice, run_id: str, **extra: object) -> TaskInput:
    values: dict[str, object] = {
        "run_id": run_id, "repo": str(repo), "goal": "add mul", "policy": policy,
        "max_repair_rounds": 2, "heartbeat_timeout_s": 2.0, "test_timeout_s": 60,
    }  # fmt: skip
    return TaskInput(**(values | extra))  # type: ignore[arg-type]


async def _run_through_a_crash(
    client: Client, settings: Settings, task: TaskInput, tmp_path: Path, crash: object,
    env: dict[str, str] | None = None,
) -> tuple[TaskResult, TaskState]:  # fmt: skip
    """Start the run on one worker, await `crash` (the moment to kill it), kill -9 it, start
    another, and wait for the run to finish there."""
    first = start_worker(settings, tmp_path / "worker1.log", env)
    second = None
    try:
        await client.start_workflow(
            FORWARD_WORKFLOW, task, id=task.run_id, task_queue=settings.task_queue
        )
        await crash  # type: ignore[misc]
        kill(first)
        second = start_worker(settings, tmp_path / "worker2.log", env)
        handle = client.get_workflow_handle(task.run_id, result_type=TaskResult)
        result = await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=120)), 150)
        state = await handle.query("state", result_type=TaskState)
    finally:
        stop(first, second)
    return result, state


def _delivered_once(repo: Path, settings: Settings, result: TaskResult, state: TaskState) -> None:
    """One ratchet branch, holding one commit on the base; the patch artifact is that diff."""
    base = state.snapshots["base"]
    assert git("branch", "--list", "ratchet/*", cwd=repo).split() == [result.branch]
    assert git("rev-list", "--count", f"{base}..{result.branch}", cwd=repo) == "1"
    assert result.patch_ref is not None
    patch = FilesystemArtifactStore(settings.artifacts_dir).get_text(result.patch_ref)
    assert patch == git("diff", f"{base}..{result.branch}", cwd=repo) + "\n"
    assert state.steps[-1].name == "deliver" and state.steps[-1].attempts == 1


async def test_killed_mid_patch(client: Client, settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    store = FilesystemArtifactStore(settings.artifacts_dir)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL], pause_s=3)
    task = _task(repo, PolicyChoice("scripted", store.put_text(script.read_text())),
                 "task-crash-patch")  # fmt: skip

    async def mid_patch() -> None:
        await wait_for_step(client, task.run_id, "patch", 1)
        await asyncio.sleep(1.0)  # inside the script's 3-second pause

    result, state = await _run_through_a_crash(client, settings, task, tmp_path, mid_patch())
    assert all(g.passed for g in result.gates)
    steps = [(s.name, s.round, s.attempts) for s in state.steps]
    assert steps[:7] == [
        ("prepare", None, 1), ("environment", None, 1), ("baseline", None, 1),
        ("baseline lint", None, 1),
        ("memory", None, 1), ("plan", None, 1), ("patch", 1, 1),
    ]  # fmt: skip
    # The patch step is an agent loop: the model turn the crash cut short was tried again.
    child = await client.get_workflow_handle(f"{task.run_id}-patch-1-0").fetch_history()
    turn_attempts = [
        e.activity_task_started_event_attributes.attempt for e in child.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]  # fmt: skip
    assert 2 in turn_attempts, turn_attempts
    # The patch it applied made one snapshot (same tree, same fixed date): one commit.
    mirror = Path(next(iter((settings.home / "mirrors").glob("*/"))))
    refs = git(
        "for-each-ref", "--format=%(refname)", f"refs/ratchet/{task.run_id}/", git_dir=mirror
    )
    edits = [r for r in refs.split() if r.startswith(f"refs/ratchet/{task.run_id}/edit-")]
    assert len(edits) == len(set(edits)) >= 2, refs  # round 1's patch, round 2's fix
    _delivered_once(repo, settings, result, state)


async def test_killed_mid_test_run(client: Client, settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    store = FilesystemArtifactStore(settings.artifacts_dir)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    task = _task(repo, PolicyChoice("scripted", store.put_text(script.read_text())),
                 "task-crash-test", test_command="sleep 3 && python -m pytest -q")  # fmt: skip

    async def mid_test() -> None:
        await wait_for_step(client, task.run_id, "test", 1)
        await asyncio.sleep(1.0)  # well inside the 3-second test command

    result, state = await _run_through_a_crash(client, settings, task, tmp_path, mid_test())
    assert all(g.passed for g in result.gates)
    steps = [(s.name, s.round, s.attempts) for s in state.steps]
    # The interrupted test step ran twice; the steps before it ran once.
    assert steps[:8] == [
        ("prepare", None, 1), ("environment", None, 1), ("baseline", None, 1),
        ("baseline lint", None, 1),
        ("memory", None, 1), ("plan", None, 1), ("patch", 1, 1), ("test", 1, 2),
    ]  # fmt: skip
    # The trace shows the retry: the killed worker never ended its span; the second worker's
    # span of the same step is attempt 2 (the later test steps are first attempts).
    spans = load_spans(settings.home / "traces.jsonl")
    attempts = [
        s["attributes"]["temporal.activity.attempt"] for s in spans
        if s["name"] == "RunActivity:ratchet.run_tests"
        and s["attributes"].get("ratchet.run_id") == task.run_id
    ]  # fmt: skip
    assert attempts.count(2) == 1 and set(attempts) == {1, 2}, attempts
    _delivered_once(repo, settings, result, state)


async def test_killed_mid_model_call(client: Client, settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    # Request 3 is the second turn of the coding loop (plan, read_file, then this one): the fake
    # keeps it waiting, and the worker waiting for it is killed.
    fake = FakeMessagesApi(happy_path(), headers={"retry-after": "0"}, hold={3: 8.0})
    with fake.serve() as url:
        env = {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 20, "ANTHROPIC_BASE_URL": url}
        task = _task(repo, PolicyChoice("anthropic"), "task-crash-model",
                     model_retry_initial_s=0.1, turns_per_execution=2)  # fmt: skip

        async def mid_call() -> None:
            await asyncio.wait_for(asyncio.to_thread(fake.held.wait), 90)
            await asyncio.sleep(0.5)

        result, state = await _run_through_a_crash(
            client, settings, task, tmp_path, mid_call(), env
        )
    assert all(g.passed for g in result.gates)
    # 7 turns were paid for (plan, five coding turns, one refactor turn), and the fake saw
    # exactly one request more: the one cut off by the kill. No finished turn was asked again.
    assert state.usage.turns == 7
    assert len(fake.requests) == 8
    bodies = [str(r["body"]["messages"]) for r in fake.requests]
    assert bodies[2] == bodies[3]  # the cut-off turn, asked again as it was
    assert len(set(bodies[:3] + bodies[4:])) == 7  # every other request is a different turn
    _delivered_once(repo, settings, result, state)
