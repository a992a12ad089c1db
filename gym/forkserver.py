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
import logging
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gym.forkserver_main as server_main
from gym.forked import SCRIPT, SOCKET, ServerGone, run_forked
from gym.runner import Call, CommandResult, scrubbed_env
from gym.sandbox import HOME_INSIDE, RESULTS_INSIDE, BwrapSandbox

log = logging.getLogger("ratchet.gym")
START_TIMEOUT_S = 30.0
IDLE_S = 300.0
"""A server unused this long goes: it exits by itself, and is closed at the next run here."""
SHELL_SYNTAX = set(';&|<>()$`\\*?[]{}~#\n"')
"""What the shell would read as more than words, outside single quotes (shlex.quote's)."""
STARTUP_PREFIXES = ("PYTHON", "LD_")
"""Variables the interpreter reads when it starts: a server serves only runs that agree on them."""


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
    # A plain Popen, not an asyncio process: a server outlives the event loop that started it
    # (each test has its own), and belongs to none.
    key: tuple[object, ...]
    proc: subprocess.Popen[bytes]
    results: Path
    busy: bool = False
    used_at: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.results, ignore_errors=True)


class ForkServers:
    """The warm servers of this process, one per workspace path (at most `limit`)."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self.servers: dict[Path, _Server] = {}
        # Dropped without close() (a worker of a test): its servers go with it.
        weakref.finalize(self, _close_all, self.servers)
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
        if server is None or server.busy:  # busy: one run at a time (a slot has one probe)
            return None
        server.busy = True
        try:
            result = await run_forked(server.results, call, args, env, self._note)
        except ServerGone as gone:
            self._note(str(gone))
            if (gone_server := self.servers.pop(call.workspace.resolve(), None)) is not None:
                gone_server.close()
            return None
        finally:
            server.busy = False
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
        self._close_idle()
        found = self.servers.get(where)
        if found is not None and (found.busy or (found.key == key and found.alive)):
            return found
        if found is not None:
            self.servers.pop(where).close()
        while len(self.servers) >= self.limit:
            oldest = min(self.servers, key=lambda p: self.servers[p].used_at)
            self.servers.pop(oldest).close()
        server = await asyncio.to_thread(_start, call, env, key, self._note)
        if server is not None:
            self.servers[where] = server
            self.started += 1
        return server

    def _close_idle(self) -> None:
        now = time.monotonic()
        idle = [p for p, s in self.servers.items() if now - s.used_at > IDLE_S and not s.busy]
        for path in idle:
            self.servers.pop(path).close()

    async def close(self) -> None:
        _close_all(self.servers)


def _close_all(servers: dict[Path, _Server]) -> None:
    while servers:
        servers.popitem()[1].close()


def _request_env(call: Call) -> dict[str, str]:
    """The environment the command would see in a sandbox of its own (gym/runner.py's)."""
    assert isinstance(call.sandbox, BwrapSandbox)
    base = scrubbed_env(call.sandbox, {"HOME": "", "TMPDIR": ""})
    inside = call.sandbox.inside_env(base)
    return inside | {k: v.replace("{results}", RESULTS_INSIDE) for k, v in call.env.items()}


def _start(call: Call, env: dict[str, str], key: tuple[object, ...],
           note: Callable[[str], None]) -> _Server | None:  # fmt: skip
    assert isinstance(call.sandbox, BwrapSandbox)
    results = Path(tempfile.mkdtemp(prefix="ratchet-fork-"))
    shutil.copy(server_main.__file__, results / SCRIPT)
    line = (f"exec python {RESULTS_INSIDE}/{SCRIPT} {RESULTS_INSIDE}/{SOCKET} {HOME_INSIDE} "
            f"{IDLE_S:g}")  # fmt: skip
    startup = dict(_startup(env)) | {"PATH": env["PATH"]}
    argv, _, _ = call.sandbox.wrap(["/bin/sh", "-c", line], call.workspace, startup, results)
    proc = subprocess.Popen(
        argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    server = _Server(key, proc, results)
    assert proc.stdout is not None
    with proc.stdout:  # it says "ready" (or why not), then nothing more
        readable, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        said = proc.stdout.readline() if readable else b"no answer"
    if said.strip() != b"ready":
        note(f"the fork server did not start: {said.decode(errors='replace').strip()[:200]}")
        server.close()
        return None
    return server
