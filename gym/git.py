"""A thin, typed wrapper over the git command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Fixed identity and no user/system config: runs are reproducible whatever the machine has.
_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Ratchet",
    "GIT_AUTHOR_EMAIL": "ratchet@localhost",
    "GIT_COMMITTER_NAME": "Ratchet",
    "GIT_COMMITTER_EMAIL": "ratchet@localhost",
}


class GitError(RuntimeError):
    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args[:3])} failed ({returncode}): {stderr.strip()[:2000]}")
        self.returncode = returncode
        self.stderr = stderr


def git(
    *args: str,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 600,
) -> str:
    """Run git and return its stdout as text (stripped of the final newline)."""
    return (
        git_bytes(
            *args, cwd=cwd, git_dir=git_dir, env=env, input=input, check=check, timeout=timeout
        )
        .decode(errors="replace")
        .rstrip("\n")
    )


def git_bytes(
    *args: str,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 600,
) -> bytes:
    argv = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    argv += list(args)
    full_env = {**os.environ, **_ENV, **(env or {})}
    proc = subprocess.run(
        argv, cwd=cwd, env=full_env, input=input, capture_output=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise GitError(list(args), proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout


def is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)
