"""Run a repository's command in its workspace: inside the sandbox, with a scrubbed environment,
resource limits, capped output, and a wall-clock timeout that kills every process of the run.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.trace import StatusCode

from gym.cgroups import CgroupLimits
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


Tick = Callable[[], Awaitable[None] | None]


def scrubbed_env(sandbox: Sandbox, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: nothing is inherited, so no key, token or credential can leak.
    `python`, `pip` and the rest are the environment's (first on PATH)."""
    env = {
        "PATH": sandbox.search_path(),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "CI": "1",
    }
    if (seen := sandbox.environment_seen()) is not None:
        env["VIRTUAL_ENV"] = seen
    return env | (extra or {})


def _child_setup(limits: Limits, cgroup: CgroupLimits | None) -> Callable[[], None]:
    def setup() -> None:
        if cgroup is not None:
            cgroup.join()
        for which, value in (
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_NPROC, limits.max_processes),
            (resource.RLIMIT_FSIZE, limits.max_file_bytes),
            (resource.RLIMIT_NOFILE, limits.max_open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, (value, value))

    return setup


def describe(sandbox: Sandbox, limits: Limits, cgroup: CgroupLimits | None) -> str:
    caps = (
        f"wall {limits.timeout_s:g}s, address space {limits.memory_bytes // 2**20} MiB, "
        f"cpu {limits.cpu_seconds}s, nproc {limits.max_processes}"
    )
    if os.geteuid() == 0 and cgroup is None:
        caps += " (not enforced for root without a cgroup)"
    groups = f"; {cgroup.description}" if cgroup else "; no cgroup"
    return f"{sandbox.description}; rlimits: {caps}{groups}"


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
) -> CommandResult:
    """Run `command` with /bin/sh in `workspace`, as a span of the current trace.

    `env` entries may name `{results}`, replaced by where the results directory appears to the
    command; `tick` is called while it runs (heartbeats); `on_output` sees every chunk. The
    command also gets TRACEPARENT, so what it traces joins the caller's trace.
    """
    with process_span("sandbox.process", command) as span:
        result = await _run(
            command, workspace, limits=limits or Limits(), sandbox=sandbox,
            env={**trace_env(), **(env or {})}, results=results, tick=tick,
            tick_every_s=tick_every_s, on_output=on_output,
        )  # fmt: skip
        span.set_attributes({
            "process.exit_code": result.exit_code, "ratchet.timed_out": result.timed_out,
            "ratchet.killed_by": result.killed_by, "ratchet.duration_s": result.duration_s,
            "ratchet.sandbox": (sandbox or NoSandbox()).name,
        })  # fmt: skip
        if result.exit_code != 0:
            span.set_status(StatusCode.ERROR, f"exit {result.exit_code}")
    for reason in result.killed_by:
        SANDBOX_KILLS.add(1, {"reason": reason})
    return result


async def _run(
    command: str,
    workspace: Path,
    *,
    limits: Limits,
    sandbox: Sandbox | None,
    env: dict[str, str],
    results: Path | None,
    tick: Tick | None,
    tick_every_s: float,
    on_output: Callable[[bytes], None] | None,
) -> CommandResult:
    sandbox = sandbox if sandbox is not None else NoSandbox()
    own_results = results is None
    results = results or Path(tempfile.mkdtemp(prefix="ratchet-results-"))
    cgroup = CgroupLimits.create(limits.max_processes, limits.memory_bytes)
    isolation = describe(sandbox, limits, cgroup)
    if isinstance(sandbox, NoSandbox):
        log.warning("running %r WITHOUT a sandbox: %s", command[:80], isolation)
    base_env = scrubbed_env(sandbox, {"HOME": str(results), "TMPDIR": str(results)})
    argv, run_env, results_seen = sandbox.wrap(
        ["/bin/sh", "-c", command], workspace, base_env, results
    )
    extra = {k: v.replace("{results}", results_seen) for k, v in env.items()}
    if run_env:
        run_env |= extra
    else:  # bwrap passes the environment as --setenv arguments
        argv = _with_env(argv, extra)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace,
        env=run_env or {"PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills every descendant
        preexec_fn=_child_setup(limits, cgroup),
    )
    chunks: list[bytes] = []
    size = 0

    async def drain() -> None:
        nonlocal size
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if on_output is not None:
                on_output(chunk)
            if size < limits.output_cap:
                chunks.append(chunk[: limits.output_cap - size])
            size += len(chunk)

    reader = asyncio.create_task(drain())
    timed_out = False
    try:
        deadline = started + limits.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                await asyncio.wait_for(proc.wait(), timeout=min(tick_every_s, remaining))
                break
            except TimeoutError:
                if tick is not None and (pending := tick()) is not None:
                    await pending
    finally:
        # Kill the group even after a clean exit: daemons the command left behind die with it.
        _kill_group(proc.pid)
        if cgroup is not None:
            cgroup.kill_all()
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, timeout=5)
        reader.cancel()
    killed_by = ["timeout"] if timed_out else []
    if cgroup is not None:
        killed_by += cgroup.limit_hits()
        cgroup.remove()
    if proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        killed_by.append("cpu")
    if own_results:
        _remove_tree(results)
    output = b"".join(chunks)
    if timed_out:
        output += f"\n[ratchet] killed after the {limits.timeout_s:g}s wall-clock limit\n".encode()
    return CommandResult(
        exit_code=124 if timed_out else (proc.returncode if proc.returncode is not None else -1),
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output=output,
        truncated=size > limits.output_cap,
        isolation=isolation,
        killed_by=killed_by,
    )


def _with_env(argv: list[str], extra: dict[str, str]) -> list[str]:
    if not extra:
        return argv
    at = argv.index("--chdir")
    added = [part for key, value in sorted(extra.items()) for part in ("--setenv", key, value)]
    return argv[:at] + added + argv[at:]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
