"""Temporal itself goes away in the middle of a run and comes back on the same database: the
run resumes where it was and completes."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

from contracts.results import TaskResult, TaskState
from contracts.runs import FORWARD_WORKFLOW, PolicyChoice, TaskInput
from ratchet.artifacts import FilesystemArtifactStore
from tests.conftest import free_port, make_settings
from tests.faults.harness import connect, start_dev_server, wait_for_step
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from worker import build_worker


async def test_a_run_resumes_after_the_dev_server_restarts_on_its_database(
    tmp_path: Path,
) -> None:
    ports = (free_port(), free_port(), free_port())
    db, log = tmp_path / "temporal.db", tmp_path / "temporal.log"
    server = start_dev_server(db, ports, log)
    restarted = None
    try:
        target = f"127.0.0.1:{ports[0]}"
        client = await connect(target)
        settings = make_settings(tmp_path / "home", target, heartbeat_timeout_s=5.0)
        store = FilesystemArtifactStore(settings.artifacts_dir)
        script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
        task = TaskInput(
            run_id="task-restart", repo=str(make_repo(tmp_path / "calc", PY_REPO)),
            goal="add mul", policy=PolicyChoice("scripted", store.put_text(script.read_text())),
            test_command="sleep 3 && python -m pytest -q", heartbeat_timeout_s=5.0,
            test_timeout_s=60,
        )  # fmt: skip
        async with build_worker(client, settings):
            await client.start_workflow(
                FORWARD_WORKFLOW, task, id=task.run_id, task_queue=settings.task_queue
            )
            await wait_for_step(client, task.run_id, "test", 1)
            server.send_signal(signal.SIGTERM)  # the whole server, mid test step
            await asyncio.to_thread(server.wait, 30)
            await asyncio.sleep(3)  # down for a while: the test step ends meanwhile
            restarted = start_dev_server(db, ports, log)
            handle = client.get_workflow_handle(task.run_id, result_type=TaskResult)
            result = await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=120)), 150)
            state = await handle.query("state", result_type=TaskState)
    finally:
        for proc in (server, restarted):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    assert result.branch == "ratchet/task-restart" and all(g.passed for g in result.gates)
    steps = [(s.name, s.round) for s in state.steps]
    # Everything before the outage happened once; the run went on from where it was.
    assert steps[:8] == [
        ("prepare", None), ("environment", None), ("baseline", None), ("baseline lint", None),
        ("memory", None), ("plan", None), ("patch", 1), ("test", 1),
    ]  # fmt: skip
    assert state.steps[-1].name == "deliver"
