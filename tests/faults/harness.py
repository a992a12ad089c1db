"""Processes to break: a worker as its own process (kill -9 it), a Temporal dev server on a
database file (stop it, start it again on the same file)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

from contracts.runs import RunState
from ratchet.settings import Settings
from ratchet.visibility import dev_server_flags

ROOT = Path(__file__).resolve().parents[2]
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"


def start_worker(
    settings: Settings, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OTEL_", "RATCHET_"))
    }
    env |= {
        "RATCHET_HOME": str(settings.home),
        "TEMPORAL_ADDRESS": settings.temporal_target,
        "TEMPORAL_NAMESPACE": settings.namespace,
        "RATCHET_TASK_QUEUE": settings.task_queue,
        "RATCHET_HEARTBEAT_TIMEOUT_S": str(settings.heartbeat_timeout_s),
        **(extra or {}),
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill(proc)


async def wait_for_step(
    client: Client, run_id: str, name: str, round_: int | None = None, timeout_s: float = 90
) -> RunState:
    """Until the run's step `name` (of `round_`) is running (other steps may run beside it:
    a candidate's lint beside its tests)."""
    handle = client.get_workflow_handle(run_id)
    for _ in range(int(timeout_s / 0.1)):
        try:
            state = await handle.query("state", result_type=RunState)
        except Exception:  # the workflow may not have run its first task yet
            state = None
        if state and any(s.name == name and s.status == "running" and s.round == round_
                         for s in state.steps):  # fmt: skip
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"step {name} (round {round_}) never started")


def start_dev_server(db: Path, ports: tuple[int, int, int], log: Path) -> subprocess.Popen[bytes]:
    """A dev server on a database file, on (gRPC, HTTP, metrics) ports of loopback."""
    grpc, http, metrics = ports
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(TEMPORAL_CLI), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(grpc), "--http-port", str(http), "--metrics-port", str(metrics),
             "--db-filename", str(db), "--log-level", "error",
             "--sqlite-pragma", "journal_mode=wal", *dev_server_flags()],
            stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


async def connect(target: str, timeout_s: float = 30) -> Client:
    for _ in range(int(timeout_s / 0.2)):
        try:
            client = await Client.connect(target)
            await client.count_workflows()
            return client
        except Exception:  # not up yet
            await asyncio.sleep(0.2)
    raise AssertionError(f"no Temporal at {target}")
