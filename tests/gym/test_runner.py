from __future__ import annotations

import time
from pathlib import Path

import pytest

from gym.runner import Limits, run_command


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
