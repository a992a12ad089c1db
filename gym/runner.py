"""Run a repository's command in its workspace: inside the sandbox, with a scrubbed environment,
resource limits, capped output, and a wall-clock timeout that kills every process of the run.
Watching the started process (its output, heartbeats, the final kill) is gym/process.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opentelemetry.trace import StatusCode

from gym import indexes
from gym.cgroups import CgroupLimits
from gym.process import Output, Tick, start, stop, wait_for_exit
from gym.sandbox import NoSandbox, Sandbox
from gym.spans import process_span, trace_env
from ratchet.metrics import SANDBOX_KILLS

log = logging.getLogger("ratchet.gym")
OUTPUT_CAP = 2_000_000
GiB = 2**30


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 600.0
    memory_bytes: int = 4 * GiB
    cpu_seconds: int = 1200
    max_processes: int = 512
    max_file_bytes: int = 2 * GiB
    max_open_files: int = 4096
    output_cap: int = OUTPUT_CAP


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    timed_out: bool
    duration_s: float
    output: bytes
    truncated: bool
    isolation: str
    killed_by: list[str] = field(default_factory=list)
    """Limits that stopped the command: "timeout", "memory", "processes", "cpu"."""


def scrubbed_env(sandbox: Sandbox, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: nothing is inherited, so no key, token or credential can leak.
    `python`, `pip` and the rest are the environment's (first on PATH)."""
    env = {
        "PATH": sandbox.search_path(),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "CI": "1",
        # Logs are read by people and models, not terminals: no colour codes (the standard
        # variable; Vitest, Jest, cargo and most CLIs honour it).
        "NO_COLOR": "1",
    }
    if (seen := sandbox.environment_seen()) is not None:
        env["VIRTUAL_ENV"] = seen
        env |= indexes.toolchain_settings(seen, online=False)
    return env | (extra or {})


def rlimits(limits: Limits, cgroup: CgroupLimits | None) -> list[tuple[int, int]]:
    """The rlimits a command's process sets on itself, as (resource, value)."""
    # The cgroup caps real memory. Only without one is address space the cap: it is a poor
    # proxy, as runtimes reserve far more than they use (V8 reserves ~10 GiB for each
    # WebAssembly memory, so Vitest's and esbuild's Wasm parts cannot start under it).
    address_space = [] if cgroup is not None else [(resource.RLIMIT_AS, limits.memory_bytes)]
    return [
        *address_space,
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_NPROC, limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_CORE, 0),
    ]


def _child_setup(limits: Limits, cgroup: CgroupLimits | None) -> Callable[[], None]:
    values = rlimits(limits, cgroup)

    def setup() -> None:
        if cgroup is not None:
            cgroup.join()
        for which, value in values:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, (value, value))

    return setup


def describe(sandbox: Sandbox, limits: Limits, cgroup: CgroupLimits | None) -> str:
    memory = "" if cgroup else f"address space {limits.memory_bytes // 2**20} MiB, "
    caps = (
        f"wall {limits.timeout_s:g}s, {memory}cpu {limits.cpu_seconds}s, "
        f"nproc {limits.max_processes}"
    )
    if os.geteuid() == 0 and cgroup is None:
        caps += " (not enforced for root without a cgroup)"
    groups = f"; {cgroup.description}" if cgroup else "; no cgroup"
    return f"{sandbox.description}; rlimits: {caps}{groups}"


@dataclass(frozen=True)
class Call:
    """One call of run_command, its arguments resolved (defaults filled in, TRACEPARENT added)."""

    command: str
    workspace: Path
    limits: Limits
    sandbox: Sandbox
    env: dict[str, str]
    results: Path | None
    tick: Tick | None
    tick_every_s: float
    on_output: Callable[[bytes], None] | None


async def run_command(
    command: str,
    workspace: Path,
    *,
    limits: Limits | None = None,
    sandbox: Sandbox | None = None,
    env: dict[str, str] | None = None,
    results: Path | None = None,
    tick: Tick | None = None,
    tick_every_s: float = 1.0,
    on_output: Callable[[bytes], None] | None = None,
    forks: Forks | None = None,
) -> CommandResult:
    """Run `command` with /bin/sh in `workspace`, as a span of the current trace.

    `env` entries may name `{results}`, replaced by where the results directory appears to the
    command; `tick` is called while it runs (heartbeats); `on_output` sees every chunk. The
    command also gets TRACEPARENT, so what it traces joins the caller's trace. `forks` may run
    it as a child of a warm interpreter instead (gym/forkserver.py), when it can.
    """
    with process_span("sandbox.process", command) as span:
        call = Call(
            command, workspace, limits or Limits(),
            sandbox if sandbox is not None else NoSandbox(), {**trace_env(), **(env or {})},
            results, tick, tick_every_s, on_output,
        )  # fmt: skip
        result = await _forked(forks, call) if forks is not None else None
        if result is None:
            result = await _run(call)
        span.set_attributes({
            "process.exit_code": result.exit_code, "ratchet.timed_out": result.timed_out,
            "ratchet.killed_by": result.killed_by, "ratchet.duration_s": result.duration_s,
            "ratchet.sandbox": call.sandbox.name,
        })  # fmt: skip
        if result.exit_code != 0:
            span.set_status(StatusCode.ERROR, f"exit {result.exit_code}")
    for reason in result.killed_by:
        SANDBOX_KILLS.add(1, {"reason": reason})
    return result


RUNNING = [0]
"""Repository commands this process is running now: the cores a probe planner cannot have."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers narrow)."""
    return len(os.sched_getaffinity(0)) or 1


class Forks(Protocol):
    """Runs a command as a child of a warm interpreter, or answers None (gym/forkserver.py)."""

    async def run(self, call: Call) -> CommandResult | None: ...


async def _forked(forks: Forks, call: Call) -> CommandResult | None:
    if call.results is None:
        return None
    RUNNING[0] += 1
    try:
        return await forks.run(call)
    finally:
        RUNNING[0] -= 1


async def _run(call: Call) -> CommandResult:
    RUNNING[0] += 1
    try:
        return await _run_counted(call)
    finally:
        RUNNING[0] -= 1


async def _run_counted(call: Call) -> CommandResult:
    own_results = call.results is None
    results = call.results or Path(tempfile.mkdtemp(prefix="ratchet-results-"))
    cgroup = CgroupLimits.create(call.limits.max_processes, call.limits.memory_bytes)
    try:
        return await _run_in(call, results, cgroup)
    finally:  # cancelled too: the run's cgroup and its own results directory go
        if cgroup is not None:
            cgroup.remove()
        if own_results:
            _remove_tree(results)


async def _run_in(call: Call, results: Path, cgroup: CgroupLimits | None) -> CommandResult:
    limits = call.limits
    isolation = describe(call.sandbox, limits, cgroup)
    if isinstance(call.sandbox, NoSandbox):
        log.warning("running %r WITHOUT a sandbox: %s", call.command[:80], isolation)
    argv, run_env = _command_line(call, results)
    started = time.monotonic()
    # Its own process group (so a timeout kills every descendant), and safe to cancel even
    # while it is being started.
    proc = await start(
        argv,
        cgroup,
        cwd=call.workspace,
        env=run_env or {"PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_child_setup(limits, cgroup),
    )
    assert proc.stdout is not None
    output = Output(limits.output_cap, call.on_output)
    reader = asyncio.create_task(output.drain(proc.stdout))
    try:
        deadline = started + limits.timeout_s
        timed_out = await wait_for_exit(proc, deadline, call.tick, call.tick_every_s)
    finally:
        await stop(proc, cgroup, reader)
    status = proc.returncode if proc.returncode is not None else -1
    return finished(limits, cgroup, status, timed_out, output, started, isolation)


def finished(limits: Limits, cgroup: CgroupLimits | None, status: int, timed_out: bool,
             output: Output, started: float, isolation: str) -> CommandResult:  # fmt: skip
    """The result of a command that has exited (or was killed) with `status`."""
    killed_by = ["timeout"] if timed_out else []
    if cgroup is not None:
        killed_by += cgroup.limit_hits()
    if status in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        killed_by.append("cpu")
    text = b"".join(output.chunks)
    if timed_out:
        text += f"\n[ratchet] killed after the {limits.timeout_s:g}s wall-clock limit\n".encode()
    return CommandResult(
        exit_code=124 if timed_out else status,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output=text,
        truncated=output.truncated,
        isolation=isolation,
        killed_by=killed_by,
    )


def _command_line(call: Call, results: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to start: the command as the sandbox wraps it, the caller's
    `env` added with `{results}` replaced by where the command sees the results directory."""
    base_env = scrubbed_env(call.sandbox, {"HOME": str(results), "TMPDIR": str(results)})
    argv, run_env, results_seen = call.sandbox.wrap(
        ["/bin/sh", "-c", call.command], call.workspace, base_env, results
    )
    extra = {k: v.replace("{results}", results_seen) for k, v in call.env.items()}
    if run_env:
        run_env |= extra
    else:  # bwrap passes the environment as --setenv arguments
        argv = _with_env(argv, extra)
    return argv, run_env


def _with_env(argv: list[str], extra: dict[str, str]) -> list[str]:
    if not extra:
        return argv
    at = argv.index("--chdir")
    added = [part for key, value in sorted(extra.items()) for part in ("--setenv", key, value)]
    return argv[:at] + added + argv[at:]


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
