"""Run a repository's command in a workspace: scrubbed environment, capped output, and a
wall-clock timeout that kills the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

OUTPUT_CAP = 2_000_000
ISOLATION_NONE = "none: plain subprocess, no sandbox in force"


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    timed_out: bool
    duration_s: float
    output: bytes
    truncated: bool
    isolation: str


def scrubbed_env(workspace: Path) -> dict[str, str]:
    """A fresh environment: nothing is inherited, so no key, token or credential can leak."""
    interpreter_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{interpreter_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "CI": "1",
    }


async def run_command(
    command: str,
    workspace: Path,
    *,
    timeout_s: float,
    tick: Callable[[], Awaitable[None] | None] | None = None,
    tick_every_s: float = 5.0,
    output_cap: int = OUTPUT_CAP,
) -> CommandResult:
    """Run `command` with /bin/sh in `workspace`; `tick` is called while it runs (heartbeats)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command,
        cwd=workspace,
        env=scrubbed_env(workspace),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills every descendant
    )  # fmt: skip
    chunks: list[bytes] = []
    size = 0
    truncated = False

    async def drain() -> None:
        nonlocal size, truncated
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if size < output_cap:
                chunks.append(chunk[: output_cap - size])
            truncated = truncated or size + len(chunk) > output_cap
            size += len(chunk)

    reader = asyncio.create_task(drain())
    timed_out = False
    try:
        deadline = started + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                await asyncio.wait_for(proc.wait(), timeout=min(tick_every_s, remaining))
                break
            except TimeoutError:
                if tick is not None:
                    result = tick()
                    if result is not None:
                        await result
    finally:
        # Kill the group even after a clean exit: daemons the command left behind die with it.
        _kill_group(proc.pid)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, timeout=5)
        reader.cancel()
    output = b"".join(chunks)
    if timed_out:
        output += f"\n[ratchet] killed after {timeout_s:g}s wall-clock timeout\n".encode()
    return CommandResult(
        exit_code=124 if timed_out else (proc.returncode if proc.returncode is not None else -1),
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output=output,
        truncated=truncated,
        isolation=ISOLATION_NONE,
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
