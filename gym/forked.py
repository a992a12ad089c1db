"""One run through a fork server (gym/forkserver.py): the request, the child's pid as this host
sees it (its credentials), its cgroup and rlimits, its output, its exit status or its kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from opentelemetry import trace

from gym.cgroups import CgroupLimits
from gym.process import Output, Tick
from gym.runner import Call, CommandResult, describe, finished, rlimits
from gym.sandbox import WORKSPACE_INSIDE

SOCKET = "fork.sock"
SCRIPT = "forkserver_main.py"
OWN = frozenset({SCRIPT, SOCKET, ".git-pointer"})
"""What the server keeps in its results directory; everything else there is a run's."""
ANSWER_TIMEOUT_S = 30.0
FORKED = "forked from a warm interpreter (pytest imported once, a child per run)"


class ServerGone(Exception):
    """Nothing answers at the server's socket (it exited: idle, killed)."""


async def run_forked(where: Path, call: Call, args: list[str], env: dict[str, str],
                     note: Callable[[str], None]) -> CommandResult | None:  # fmt: skip
    """Run pytest with `args` as a child of the server whose results directory is `where`;
    None when it refuses (`note` says why). Raises ServerGone when nothing answers there."""
    assert call.results is not None
    _copy_in(call.results, where)
    cgroup = CgroupLimits.create(call.limits.max_processes, call.limits.memory_bytes)
    if cgroup is None:
        # A daemon a run leaves (one that left its process group) would outlive it in the
        # server's sandbox, and only a cgroup reaches it: without one, every run is fresh.
        note("no cgroup here: a forked run's daemons could outlive it")
        return None
    script = args[:1] == ["--console-script"]
    request = {"cwd": WORKSPACE_INSIDE, "env": env, "args": args[script:], "script": script,
               "rlimits": rlimits(call.limits, cgroup)}  # fmt: skip
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = 0
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            conn.connect(str(where / SOCKET))
            socket.send_fds(conn, [json.dumps(request).encode()], [out_w, go_r])
        except OSError as err:
            raise ServerGone(f"the fork server is gone: {err}") from err
        os.close(out_w)
        os.close(go_r)
        out_w = go_r = -1
        conn.setblocking(False)
        answer, pid = await _first_answer(conn)
        if not pid:
            note(json.loads(answer or b"{}").get("cold", "the fork server hung up"))
            return None
        if cgroup is not None:
            await asyncio.to_thread(cgroup.join, pid)  # ~10 ms on cgroup v1: off the loop
        trace.get_current_span().set_attribute("ratchet.forked", True)
        started = time.monotonic()
        os.write(go_w, b"g")
        pipe = os.fdopen(out_r, "rb", 0)  # closed by its transport, never by number again
        out_r = -1
        return await _watch(call, conn, pipe, pid, cgroup, started)
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # daemons it left go with it
        if cgroup is not None:
            cgroup.remove()
        conn.close()
        for fd in (out_r, out_w, go_r, go_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        _move_out(where, call.results)


async def _first_answer(conn: socket.socket) -> tuple[bytes, int]:
    """The child's credentials (its pid as this host sees it), or the server's refusal."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await asyncio.wait_for(ready, ANSWER_TIMEOUT_S)
    finally:
        loop.remove_reader(conn.fileno())
    data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(struct.calcsize("3i")))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and data == b"p":
            return b"", struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
    return data, 0


async def _watch(call: Call, conn: socket.socket, pipe: BinaryIO, pid: int,
                 cgroup: CgroupLimits | None, started: float) -> CommandResult:  # fmt: skip
    loop = asyncio.get_running_loop()
    output = Output(call.limits.output_cap, call.on_output)
    stream = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), pipe
        )
    except BaseException:
        pipe.close()
        raise
    reader = asyncio.create_task(output.drain(stream))
    answer = asyncio.ensure_future(loop.sock_recv(conn, 4096))
    timed_out = False
    try:
        deadline = started + call.limits.timeout_s
        timed_out = await _wait(answer, deadline, call.tick, call.tick_every_s)
    finally:
        if not answer.done() or timed_out:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            if cgroup is not None:
                cgroup.kill_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answer), 5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 5)
        reader.cancel()
        transport.close()
    status = json.loads(answer.result() or b'{"exit": -9}').get("exit", -1)
    isolation = f"{describe(call.sandbox, call.limits, cgroup)}; {FORKED}"
    return finished(call.limits, cgroup, status, timed_out, output, started, isolation)


async def _wait(answer: asyncio.Future[bytes], deadline: float, tick: Tick | None,
                every_s: float) -> bool:  # fmt: skip
    """Wait for the server's answer, ticking meanwhile; True when the deadline came first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        done, _ = await asyncio.wait({answer}, timeout=min(every_s, remaining))
        if done:
            return False
        if tick is not None and (pending := tick()) is not None:
            await pending


def _copy_in(results: Path, server_results: Path) -> None:
    """What the caller put in its results directory for the command (a collector, a reporter)."""
    for entry in results.iterdir():
        if entry.is_file():
            shutil.copy(entry, server_results / entry.name)


def _move_out(server_results: Path, results: Path) -> None:
    for entry in server_results.iterdir():
        if entry.name not in OWN:
            target = results / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(entry), str(target))
