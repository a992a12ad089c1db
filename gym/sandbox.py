"""Where a repository's command runs: bubblewrap when it works here, else nothing (said loudly).

The bubblewrap sandbox has no network, a read-only root, a private /tmp and only the workspace
(and a results directory) writable; the environment is built from scratch.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from gym.errors import GymError

RESULTS_INSIDE = "/tmp/.ratchet"  # where the results directory appears inside the sandbox
# The workspace appears at a neutral path: tools that search upwards for configuration (pytest,
# ruff) must find the repository's, never that of whatever project holds $RATCHET_HOME.
WORKSPACE_INSIDE = "/tmp/workspace"


class SandboxUnavailable(GymError):
    """The operator requires a sandbox (RATCHET_REQUIRE_SANDBOX=1) and none works here."""


class Sandbox(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def wrap(
        self, argv: list[str], workspace: Path, env: dict[str, str], results: Path
    ) -> tuple[list[str], dict[str, str], str]:
        """The argv and environment to run, and where `results` appears to the command."""
        ...


@dataclass(frozen=True)
class NoSandbox:
    name: str = "none"
    description: str = (
        "NONE: no sandbox in force; the command ran with the worker's network and filesystem "
        "access (scrubbed environment and resource limits only)"
    )

    def wrap(
        self, argv: list[str], workspace: Path, env: dict[str, str], results: Path
    ) -> tuple[list[str], dict[str, str], str]:
        return argv, env, str(results)


@dataclass(frozen=True)
class BwrapSandbox:
    binary: str = "bwrap"
    name: str = "bwrap"
    description: str = (
        f"bwrap: no network, read-only root, private /tmp, only the workspace writable "
        f"(at {WORKSPACE_INSIDE}), scrubbed environment"
    )

    def wrap(
        self, argv: list[str], workspace: Path, env: dict[str, str], results: Path
    ) -> tuple[list[str], dict[str, str], str]:
        ws = WORKSPACE_INSIDE
        args = [self.binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        args += ["--tmpfs", "/tmp"]
        # A private /tmp hides anything of ours that lives under /tmp: bind the interpreter back.
        for keep in sorted({sys.prefix, sys.base_prefix}):
            if keep.startswith("/tmp/"):
                args += ["--ro-bind", keep, keep]
        args += ["--bind", str(workspace.resolve()), ws, "--bind", str(results), RESULTS_INSIDE]
        args += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--clearenv"]
        inside_env = {**env, "HOME": "/tmp", "TMPDIR": "/tmp"}
        for key, value in sorted(inside_env.items()):
            args += ["--setenv", key, value]
        args += ["--chdir", ws, "--", *argv]
        return args, {}, RESULTS_INSIDE


@cache
def bwrap_works(binary: str = "bwrap") -> bool:
    """Probe once per process: installed is not enough (user namespaces may be off)."""
    probe = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    probe += ["--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--", "/bin/true"]
    try:
        return subprocess.run([binary, *probe], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_sandbox(*, require: bool = False, allow: bool = True) -> Sandbox:
    if allow and bwrap_works():
        return BwrapSandbox()
    if require:
        raise SandboxUnavailable(
            "RATCHET_REQUIRE_SANDBOX=1 but no sandbox works here (bubblewrap is missing or user "
            "namespaces are off): refusing to run untrusted code"
        )
    return NoSandbox()
