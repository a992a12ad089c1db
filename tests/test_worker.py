"""A worker killed in the middle of a run: another one picks the run up and finishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from workflows.shared import FORWARD_WORKFLOW, PolicyChoice, RunResult, RunState, TaskInput

ROOT = Path(__file__).resolve().parents[1]


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OTEL_", "RATCHET_"))
    }
    env |= {
        "RATCHET_HOME": str(settings.home),
        "TEMPORAL_ADDRESS": settings.temporal_target,
        "RATCHET_TASK_QUEUE": settings.task_queue,
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def wait_for_step(client: Client, run_id: str, name: str, timeout_s: float = 60) -> RunState:
    handle = client.get_workflow_handle(run_id)
    for _ in range(int(timeout_s / 0.1)):
        try:
            state = await handle.query("state", result_type=RunState)
        except Exception:  # the workflow may not have run its first task yet
            state = None
        if (
            state
            and state.steps
            and state.steps[-1].name == name
            and (state.steps[-1].status == "running")
        ):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"step {name} never started")


async def test_killed_worker_mid_test_step_resumes_without_redoing_steps(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    store = FilesystemArtifactStore(settings.artifacts_dir)
    script_ref = store.put_text(
        write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL]).read_text()
    )
    task = TaskInput(
        run_id="task-crash",
        repo=str(repo),
        goal="add mul",
        policy=PolicyChoice("scripted", script_ref),
        test_command="sleep 3 && python -m pytest -q",
        max_repair_rounds=2,
        heartbeat_timeout_s=2.0,
        test_timeout_s=60,
    )
    first = start_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        await client.start_workflow(
            FORWARD_WORKFLOW, task, id=task.run_id, task_queue=settings.task_queue
        )
        handle = client.get_workflow_handle(task.run_id, result_type=RunResult)
        await wait_for_step(client, task.run_id, "test")
        await asyncio.sleep(1.0)  # well inside the 3-second test command
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(settings, tmp_path / "worker2.log")
        result = await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=90)), 120)
        state = await handle.query("state", result_type=RunState)
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    assert result.branch == "ratchet/task-crash"
    assert all(g.passed for g in result.gates)
    steps = [(s.name, s.round, s.attempts) for s in state.steps]
    # The interrupted test step ran twice; the steps before it ran once.
    assert steps[:7] == [
        ("prepare", None, 1), ("baseline", None, 1), ("baseline lint", None, 1),
        ("memory", None, 1), ("plan", None, 1), ("patch", 1, 1), ("test", 1, 2),
    ]  # fmt: skip
    assert state.steps[-1].name == "deliver" and state.steps[-1].status == "completed"
