from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from gym.runner import Limits, run_command
from gym.sandbox import BwrapSandbox, NoSandbox, Sandbox


async def test_exit_code_and_output(tmp_path: Path) -> None:
    result = await run_command("echo hello; exit 3", tmp_path, limits=Limits(timeout_s=10))
    assert result.exit_code == 3 and not result.timed_out
    assert result.output == b"hello\n"


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    # The child ignores SIGTERM and outlives its shell; only a group kill reaches it.
    result = await run_command(
        f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; sleep 60' & sleep 60",
        tmp_path,
        limits=Limits(timeout_s=1),
    )
    assert result.timed_out and result.exit_code == 124
    assert time.monotonic() - started < 10
    assert b"wall-clock limit" in result.output
    child = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child} survived the timeout")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "Z"


async def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("RATCHET_API_TOKEN", "ratchet-secret")
    result = await run_command("env", tmp_path, limits=Limits(timeout_s=10))
    assert b"secret" not in result.output
    assert b"PATH=" in result.output


async def test_output_is_capped(tmp_path: Path) -> None:
    result = await run_command(
        "yes | head -c 100000", tmp_path, limits=Limits(timeout_s=10, output_cap=1000)
    )
    assert len(result.output) == 1000 and result.truncated


async def test_ticks_while_running(tmp_path: Path) -> None:
    ticks = []
    await run_command(
        "sleep 0.5",
        tmp_path,
        limits=Limits(timeout_s=10),
        tick=lambda: ticks.append(1),
        tick_every_s=0.1,
    )
    assert len(ticks) >= 2


@pytest.mark.parametrize("sandbox", [NoSandbox(), BwrapSandbox()], ids=["none", "bwrap"])
async def test_a_cancel_while_the_command_starts_kills_all_it_started(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # Cancelled while the child's pipes are still being connected, asyncio alone kills that
    # child only: what it started already (the command inside bwrap, a shell's children) lives on.
    leaked, waited = [], []
    for attempt in range(20):
        marker = f"ratchet-starting-{os.getpid()}-{attempt}-{time.time_ns()}"
        # One child keeps the output pipe open, the other (a daemon) lets go of it.
        command = f"sh -c 'sleep 60; : {marker}' >/dev/null 2>&1 & sh -c 'sleep 60; : {marker}'"
        task = asyncio.create_task(
            run_command(command, tmp_path, limits=Limits(timeout_s=90), sandbox=sandbox)
        )
        deadline = time.monotonic() + 20
        while not _running(marker):  # cancel as soon as the process shows
            assert not task.done() and time.monotonic() < deadline, task
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        if not done:  # it waits for what it left running to let go of the output pipe
            waited.append(attempt)
        if left := await _still_running(marker, within_s=2):
            leaked.append(attempt)
            _kill_groups(left)  # the test's own leftovers: a failure leaves nothing behind
        await asyncio.wait({task}, timeout=10)
        assert task.cancelled(), task
    assert (leaked, waited) == ([], []), f"leaked in attempts {leaked}, waited in {waited}"


def _running(marker: str) -> list[int]:
    """Pids of this machine's processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if entry.name != str(os.getpid()) and marker.encode() in (
                (entry / "cmdline").read_bytes()
            ):
                found.append(int(entry.name))
    return found


async def _still_running(marker: str, within_s: float) -> list[int]:
    """The processes holding `marker` that are still there after `within_s` (a SIGKILL is
    delivered asynchronously)."""
    deadline = time.monotonic() + within_s
    while (left := _running(marker)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def _kill_groups(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
