"""Warm pytest runs: one sealed fork server per workspace slot, kept between runs.

A probe runs one test at one commit, and most of a fresh `python -m pytest` is importing pytest
(110 of 190 ms here). A worker's probe slots are warm worktrees that stay at their path
(gym/snapshots.py's pool), so each slot can keep a server: a bubblewrap sandbox built exactly as
the command's own would be (the slot's worktree at the workspace path, the environment
read-only, no network, no host), whose interpreter has imported pytest and forks a child per run
(gym/forkserver_main.py). The child gets the run's environment, rlimits and cgroup, a fresh /tmp
and HOME, and its output and exit status come back as a fresh process's would.

A server serves only what it can run as a fresh process would: a plain `python -m pytest ...`
(no shell syntax) with the same sandbox, the same interpreter start-up variables and the same
workspace directory; anything else, or a server that will not start or refuses (a module it
imported comes from, or would be shadowed by, the workspace), is run the usual way. Children of
one server share its hash seed (PYTHONHASHSEED is drawn once, at its start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import gym.forkserver_main as server_main
from gym.cgroups import CgroupLimits
from gym.process import Output, Tick
from gym.runner import (
    FORKED_NOTE,
    Call,
    CommandResult,
    describe,
    finished,
    rlimits,
    scrubbed_env,
)
from gym.sandbox import HOME_INSIDE, RESULTS_INSIDE, WORKSPACE_INSIDE, BwrapSandbox

log = logging.getLogger("ratchet.gym")
SCRIPT = "forkserver_main.py"
SOCKET = "fork.sock"
OWN = frozenset({SCRIPT, SOCKET, ".git-pointer"})
"""What the server keeps in its results directory; everything else there is a run's."""
START_TIMEOUT_S = 30.0
IDLE_S = 300.0
"""A server unused this long goes: it exits by itself, and is closed at the next run here."""
SHELL_SYNTAX = set(';&|<>()$`\\*?[]{}~#\n"')
"""What the shell would read as more than words, outside single quotes (shlex.quote's)."""
STARTUP_PREFIXES = ("PYTHON", "LD_")
"""Variables the interpreter reads when it starts: a server serves only runs that agree on them."""
FORKED = f"forked from a warm interpreter {FORKED_NOTE}"


def pytest_args(command: str) -> list[str] | None:
    """The arguments of a plain `python -m pytest ...` (first "--console-script" for `pytest
    ...`); None for anything else."""
    if any(ch in SHELL_SYNTAX for ch in re.sub(r"'[^']*'", "", command)):
        return None
    words = shlex.split(command)
    if words[:1] == ["pytest"]:
        words = ["pytest", "pytest", *words]  # the console script: `pytest` on PATH
    elif len(words) < 3 or words[0] not in ("python", "python3") or words[1:3] != ["-m", "pytest"]:
        return None
    if "=" in words[0] or any("=" in w and not w.startswith("-") for w in words[3:]):
        return None  # an assignment-looking word: leave it to the shell
    return words[3:] if words[0] != "pytest" else ["--console-script", *words[3:]]


def _startup(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(STARTUP_PREFIXES)))


@dataclass
class _Server:
    key: tuple[object, ...]
    proc: asyncio.subprocess.Process
    results: Path
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    used_at: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        shutil.rmtree(self.results, ignore_errors=True)


class ForkServers:
    """The warm servers of this process, one per workspace path (at most `limit`)."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self.servers: dict[Path, _Server] = {}
        # Dropped without close() (a worker of a test): its servers go with it.
        weakref.finalize(self, _kill, self.servers)
        self.started = 0
        self.forked = 0
        self.cold: list[str] = []
        """Why runs offered were not forked (the latest few): for tests and logs."""

    async def run(self, call: Call) -> CommandResult | None:
        """The command's result from a forked child, or None: run it the usual way."""
        args = pytest_args(call.command)
        if args is None or not isinstance(call.sandbox, BwrapSandbox) or call.results is None:
            return None
        env = _request_env(call)
        server = await self._server(call, env)
        if server is None:
            return None
        async with server.lock:
            result = await _run(server, call, args, env, self._note)
        server.used_at = time.monotonic()
        if result is not None:
            self.forked += 1
        return result

    def _note(self, why: str) -> None:
        self.cold = [*self.cold[-9:], why]
        log.info("not forked: %s", why)

    async def _server(self, call: Call, env: dict[str, str]) -> _Server | None:
        where = call.workspace.resolve()
        stat = where.stat()
        key = (call.sandbox, _startup(env), stat.st_dev, stat.st_ino)
        await self._close_idle()
        found = self.servers.get(where)
        if found is not None and found.key == key and found.alive:
            return found
        if found is not None:
            await self.servers.pop(where).close()
        while len(self.servers) >= self.limit:
            oldest = min(self.servers, key=lambda p: self.servers[p].used_at)
            await self.servers.pop(oldest).close()
        server = await _start(call, env, key, self._note)
        if server is not None:
            self.servers[where] = server
            self.started += 1
        return server

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for path in [p for p, s in self.servers.items() if now - s.used_at > IDLE_S]:
            await self.servers.pop(path).close()

    async def close(self) -> None:
        while self.servers:
            await self.servers.popitem()[1].close()


def _kill(servers: dict[Path, _Server]) -> None:
    for server in servers.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        shutil.rmtree(server.results, ignore_errors=True)


def _request_env(call: Call) -> dict[str, str]:
    """The environment the command would see in a sandbox of its own (gym/runner.py's)."""
    assert isinstance(call.sandbox, BwrapSandbox)
    base = scrubbed_env(call.sandbox, {"HOME": "", "TMPDIR": ""})
    inside = call.sandbox.inside_env(base)
    return inside | {k: v.replace("{results}", RESULTS_INSIDE) for k, v in call.env.items()}


async def _start(call: Call, env: dict[str, str], key: tuple[object, ...],
                 note: Callable[[str], None]) -> _Server | None:  # fmt: skip
    assert isinstance(call.sandbox, BwrapSandbox)
    results = Path(tempfile.mkdtemp(prefix="ratchet-fork-"))
    shutil.copy(server_main.__file__, results / SCRIPT)
    line = (f"exec python {RESULTS_INSIDE}/{SCRIPT} {RESULTS_INSIDE}/{SOCKET} {HOME_INSIDE} "
            f"{IDLE_S:g}")  # fmt: skip
    startup = dict(_startup(env)) | {"PATH": env["PATH"]}
    argv, _, _ = call.sandbox.wrap(["/bin/sh", "-c", line], call.workspace, startup, results)
    proc = await asyncio.create_subprocess_exec(
        *argv, start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    server = _Server(key, proc, results)
    assert proc.stdout is not None
    try:
        said = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
    except TimeoutError:
        said = b"no answer"
    if said.strip() != b"ready":
        note(f"the fork server did not start: {said.decode(errors='replace').strip()[:200]}")
        await server.close()
        return None
    return server


async def _run(server: _Server, call: Call, args: list[str], env: dict[str, str],
               note: Callable[[str], None]) -> CommandResult | None:  # fmt: skip
    _copy_in(call.results, server.results)  # type: ignore[arg-type]
    cgroup = CgroupLimits.create(call.limits.max_processes, call.limits.memory_bytes)
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
            conn.connect(str(server.results / SOCKET))
            socket.send_fds(conn, [json.dumps(request).encode()], [out_w, go_r])
        except OSError as err:
            note(f"the fork server is gone: {err}")
            await server.close()
            return None
        os.close(out_w)
        os.close(go_r)
        out_w = go_r = -1
        conn.setblocking(False)
        answer, pid = await _first_answer(conn)
        if not pid:
            note(json.loads(answer or b"{}").get("cold", "the fork server hung up"))
            return None
        if cgroup is not None:
            cgroup.join(pid)
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
        _move_out(server.results, call.results)  # type: ignore[arg-type]


async def _first_answer(conn: socket.socket) -> tuple[bytes, int]:
    """The child's credentials (its pid as this host sees it), or the server's refusal."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await asyncio.wait_for(ready, START_TIMEOUT_S)
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
