"""A shell command of the agent's, in the run's workspace and environment, under the same sealed
sandbox as the tests: what it prints comes back head and tail, what it changes in the workspace
is kept, except under `.git` or on a protected path (put back, and said)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from gym.git import git
from gym.paths import matches_any
from gym.process import Tick
from gym.runner import Limits, run_command
from gym.sandbox import Sandbox

HEAD_BYTES = 8_000
TAIL_BYTES = 8_000


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    timed_out: bool
    output: str
    """Head and tail of what the command printed, the size left out said between them."""
    total_bytes: int
    reverted: list[str] = field(default_factory=list)
    """Paths the command changed that it may not change (protected), put back as they were."""
    killed_by: list[str] = field(default_factory=list)

    def render(self) -> str:
        status = "timed out (killed)" if self.timed_out else f"exit {self.exit_code}"
        lines = [status + (f", killed by {', '.join(self.killed_by)}" if self.killed_by else "")]
        if self.reverted:
            lines.append(
                "put back (protected paths may not change): " + ", ".join(self.reverted[:20])
            )
        return "\n".join([*lines, self.output])


async def run_shell(
    command: str,
    workspace: Path,
    *,
    sandbox: Sandbox,
    limits: Limits,
    protected: tuple[str, ...],
    tick: Tick | None = None,
) -> ShellResult:
    tail: deque[bytes] = deque()
    seen = 0

    def keep_tail(chunk: bytes) -> None:
        nonlocal seen
        seen += len(chunk)
        tail.append(chunk)
        while sum(len(c) for c in tail) - len(tail[0]) >= TAIL_BYTES:
            tail.popleft()

    result = await run_command(
        command, workspace, sandbox=sandbox, limits=limits, tick=tick, on_output=keep_tail
    )
    reverted = put_back(workspace, protected)
    return ShellResult(
        result.exit_code, result.timed_out, _head_and_tail(result.output, b"".join(tail), seen),
        seen, reverted, result.killed_by,
    )  # fmt: skip


def _head_and_tail(head: bytes, tail: bytes, total: int) -> str:
    if total <= HEAD_BYTES + TAIL_BYTES:
        return head.decode(errors="replace")  # all of it (well under the runner's cap)
    start = head[:HEAD_BYTES].decode(errors="replace")
    end = tail[-TAIL_BYTES:].decode(errors="replace")
    elided = total - HEAD_BYTES - TAIL_BYTES
    return f"{start}\n[... {elided} bytes of output left out ...]\n{end}"


def put_back(workspace: Path, protected: tuple[str, ...]) -> list[str]:
    """Undo what changed on protected paths: tracked files as they are in HEAD, new ones
    removed. (.git cannot change: in the sandbox it is a read-only file naming a read-only
    mirror.)"""
    status = git("status", "--porcelain=v1", "-z", "--untracked-files=all", cwd=workspace)
    reverted = []
    entries = [e for e in status.split("\0") if e]
    for entry in entries:
        code, path = entry[:2], entry[3:]
        if not matches_any(path, protected) and not path.startswith(".git/"):
            continue
        reverted.append(path)
        if code == "??":
            (workspace / path).unlink(missing_ok=True)
        else:
            git("checkout", "--quiet", "HEAD", "--", path, cwd=workspace, check=False)
    return sorted(reverted)
