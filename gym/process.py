"""A started command's process: its output read and capped, heartbeats while it runs, and every
process it started killed at the end.

gym/runner.py decides what runs and how it is confined; this is what is left once the child
is started, kept apart so each step of a run reads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gym.cgroups import CgroupLimits

Tick = Callable[[], Awaitable[None] | None]
"""Called while something runs or waits (heartbeats); what it returns, if anything, is awaited."""


class Output:
    """What the command writes: every chunk goes to `on_output`, the first `cap` bytes are kept."""

    def __init__(self, cap: int, on_output: Callable[[bytes], None] | None) -> None:
        self.cap = cap
        self.on_output = on_output
        self.chunks: list[bytes] = []
        self.size = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            if self.on_output is not None:
                self.on_output(chunk)
            if self.size < self.cap:
                self.chunks.append(chunk[: self.cap - self.size])
            self.size += len(chunk)

    @property
    def truncated(self) -> bool:
        return self.size > self.cap


async def start(
    argv: list[str], cgroup: CgroupLimits | None, **options: Any
) -> asyncio.subprocess.Process:
    """Start `argv` (create_subprocess_exec `options`) in a process group of its own, so a kill
    of the group reaches every descendant.

    Safe to cancel: the start runs shielded, and a cancel arriving meanwhile waits for the
    process to exist, kills its group (and cgroup) and is then re-raised. Left to itself,
    asyncio would kill the direct child only, and what it had already started (the command
    inside bwrap, a shell's children) would outlive the step.
    """
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(*argv, start_new_session=True, **options)
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        await _stop_once_started(starting, cgroup)
        raise


async def _stop_once_started(
    starting: asyncio.Future[asyncio.subprocess.Process], cgroup: CgroupLimits | None
) -> None:
    while not starting.done():
        with contextlib.suppress(asyncio.CancelledError):  # cancelled again: still wait
            await asyncio.wait({starting})
    if starting.cancelled() or starting.exception() is not None:
        return  # nothing was started
    proc = starting.result()
    discarded = Output(0, None)
    reader = asyncio.create_task(discarded.drain(proc.stdout)) if proc.stdout else None
    await stop(proc, cgroup, reader)


async def wait_for_exit(
    proc: asyncio.subprocess.Process, deadline: float, tick: Tick | None, tick_every_s: float
) -> bool:
    """Wait for `proc` to exit, calling `tick` every `tick_every_s` meanwhile; True when the
    deadline (of time.monotonic) came first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        try:
            await asyncio.wait_for(proc.wait(), timeout=min(tick_every_s, remaining))
            return False
        except TimeoutError:
            if tick is not None and (pending := tick()) is not None:
                await pending


async def stop(
    proc: asyncio.subprocess.Process,
    cgroup: CgroupLimits | None,
    reader: asyncio.Task[None] | None,
) -> None:
    """Kill every process of the command and give its output a moment to be read."""
    # Kill the group even after a clean exit: daemons the command left behind die with it.
    _kill_group(proc.pid)
    if cgroup is not None:
        cgroup.kill_all()
    await proc.wait()
    if reader is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, timeout=5)
    reader.cancel()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
