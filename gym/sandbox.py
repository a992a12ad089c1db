"""Where a repository's command runs: a sealed bubblewrap sandbox when it works here, else
nothing (said loudly).

The bubblewrap sandbox starts from an empty root and shows the command only what programs
need: the system directories read-only (/usr and its links, /etc with every file that is not
world-readable masked), the interpreter's installation, the repository's environment
(read-only), the workspace (read-write), a results directory, a private /tmp and a fresh HOME.
$RATCHET_HOME (the API token, the mirrors, artifacts, other environments, other runs'
workspaces, Temporal's database), Ratchet's own checkout and venv, /root, /home and every other
repository are simply not there. It has its own empty network namespace and PID namespace.
The read-only part of that root, the same for every command, is gym/sealed_root.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Protocol

from gym.errors import GymError
from gym.sealed_root import (
    PYTHON_INSIDE,
    RUST_INSIDE,
    python_inside,
    relocated,
    rust_sysroot,
    sealed_root,
)

RESULTS_INSIDE = "/tmp/.ratchet"  # where the results directory appears inside the sandbox
# The workspace appears at a neutral, fixed path: tools that search upwards for configuration
# (pytest, ruff) find the repository's, and an editable install made while the environment was
# built keeps pointing at the workspace of every later step.
WORKSPACE_INSIDE = "/tmp/workspace"
ENV_INSIDE = "/opt/ratchet/env"  # the repository's environment (a venv)
TOOLS_INSIDE = "/opt/ratchet/bin"  # copies of what Ratchet itself needs inside (ruff)
GIT_INSIDE = "/opt/ratchet/git"  # the repository's own mirror, read-only, for `git log` & co
HOME_INSIDE = "/tmp/home"
KEPT_IN_WORKSPACE = ("node_modules",)
# Where tools write caches inside node_modules (Vite's bundled config and deps, Babel's and
# ESLint's caches): each command gets them writable and empty over the read-only environment.
SCRATCH_IN_KEPT = {"node_modules": (".vite-temp", ".vite", ".cache")}


class SandboxUnavailable(GymError):
    """The operator requires a sandbox (RATCHET_REQUIRE_SANDBOX=1) and none works here."""


def _ruff() -> str | None:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    return os.path.realpath(found) if found else None


class Sandbox(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def environment(self) -> Path | None:
        """The environment's directory on this machine (None: no environment)."""
        ...

    def with_environment(self, path: Path | None, *, writable: bool = False) -> Sandbox:
        """The same sandbox with `path` as the environment (writable only while it is built)."""
        ...

    def environment_seen(self) -> str | None:
        """Where the environment appears to the command."""
        ...

    def with_paths(self, paths: tuple[str, ...]) -> Sandbox:
        """The same sandbox also showing `paths` of this machine, read-only, where they are."""
        ...

    def search_path(self) -> str:
        """PATH for the command: the environment's bin first, then Ratchet's tools, the system."""
        ...

    def tool_python(self) -> str:
        """The interpreter for Ratchet's own stdlib-only helper scripts, as the command sees it."""
        ...

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
    environment: Path | None = None

    def with_environment(self, path: Path | None, *, writable: bool = False) -> NoSandbox:
        return replace(self, environment=path)

    def with_paths(self, paths: tuple[str, ...]) -> NoSandbox:
        return self  # everything is visible already

    def environment_seen(self) -> str | None:
        return str(self.environment) if self.environment else None

    def search_path(self) -> str:
        # Trusted code only: Ratchet's own bin (ruff, and python when there is no environment).
        own = str(Path(sys.executable).parent)
        first = [f"{self.environment}/bin"] if self.environment else []
        rust = [f"{r}/bin"] if (r := rust_sysroot()) else []
        return ":".join([*first, own, *rust, "/usr/local/bin", "/usr/bin", "/bin"])

    def tool_python(self) -> str:
        return sys.executable

    def wrap(
        self, argv: list[str], workspace: Path, env: dict[str, str], results: Path
    ) -> tuple[list[str], dict[str, str], str]:
        return argv, env, str(results)


@dataclass(frozen=True)
class BwrapSandbox:
    binary: str = "bwrap"
    name: str = "bwrap"
    environment: Path | None = None
    writable_environment: bool = False
    shown: tuple[str, ...] = ()
    """Paths of this machine shown read-only (only what a local user names: `--setup` files)."""

    @property
    def description(self) -> str:
        env = f", the environment read-only at {ENV_INSIDE}" if self.environment else ""
        return (
            f"bwrap (sealed): no network, own PID namespace, an empty root holding only the "
            f"system directories read-only (/usr, /etc with unreadable files masked), the "
            f"interpreter and toolchains{env}, the workspace read-write at {WORKSPACE_INSIDE}, "
            f"a private /tmp and HOME; not visible: $RATCHET_HOME, Ratchet's checkout and venv, "
            f"/root, /home, other repositories; scrubbed environment"
        )

    def with_environment(self, path: Path | None, *, writable: bool = False) -> BwrapSandbox:
        return replace(self, environment=path, writable_environment=writable)

    def with_paths(self, paths: tuple[str, ...]) -> BwrapSandbox:
        return replace(self, shown=tuple(sorted({*self.shown, *paths})))

    def environment_seen(self) -> str | None:
        return ENV_INSIDE if self.environment else None

    def search_path(self) -> str:
        first = [f"{ENV_INSIDE}/bin"] if self.environment else []
        rust = [f"{RUST_INSIDE}/bin"] if rust_sysroot() else []
        return ":".join([*first, TOOLS_INSIDE, *rust, "/usr/local/bin", "/usr/bin", "/bin"])

    def tool_python(self) -> str:
        return python_inside()

    def wrap(
        self, argv: list[str], workspace: Path, env: dict[str, str], results: Path
    ) -> tuple[list[str], dict[str, str], str]:
        ws = WORKSPACE_INSIDE
        args = [self.binary, *sealed_root()]
        args += ["--tmpfs", "/tmp", "--dir", HOME_INSIDE]
        args += ["--bind", str(workspace.resolve()), ws, "--bind", str(results), RESULTS_INSIDE]
        args += _git_binds(workspace, results)
        if self.environment is not None:
            how = "--bind" if self.writable_environment else "--ro-bind"
            args += [how, str(self.environment), ENV_INSIDE]
            # What setup installed into the workspace itself (node_modules) is kept in the
            # environment and shown back at its place.
            for name in KEPT_IN_WORKSPACE:
                if (self.environment / name).is_dir():
                    args += ["--ro-bind", str(self.environment / name), f"{ws}/{name}"]
                    args += _scratch(self.environment / name, f"{ws}/{name}")
        for path in self.shown:
            args += ["--ro-bind", path, path]
        if (ruff := _ruff()) is not None:
            args += ["--ro-bind", ruff, f"{TOOLS_INSIDE}/ruff"]
        args += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--clearenv"]
        for key, value in sorted(self.inside_env(env).items()):
            args += ["--setenv", key, value]
        args += ["--chdir", ws, "--", *argv]
        return args, {}, RESULTS_INSIDE

    @staticmethod
    def inside_env(env: dict[str, str]) -> dict[str, str]:
        """The environment the command sees, given the one `wrap` is called with."""
        inside = {**env, "HOME": HOME_INSIDE, "TMPDIR": "/tmp"}
        if relocated():
            # The interpreter's own library, found by its absolute RUNPATH elsewhere.
            inside["LD_LIBRARY_PATH"] = f"{PYTHON_INSIDE}/lib"
        return inside


def _scratch(kept: Path, inside: str) -> list[str]:
    """A private tmpfs over each cache directory the environment's build left in place (a
    mount needs its directory to exist, and the environment cannot be written)."""
    names = SCRATCH_IN_KEPT.get(kept.name, ())
    return [a for n in names if (kept / n).is_dir() for a in ("--tmpfs", f"{inside}/{n}")]


def _git_binds(workspace: Path, results: Path) -> list[str]:
    """A worktree's `.git` file names its mirror by host path: show the mirror (read-only) at a
    fixed path and the worktree a `.git` file naming it there, so `git log` works inside."""
    dot_git = workspace / ".git"
    if not dot_git.is_file():
        return []
    text = dot_git.read_text(errors="replace").strip()
    if not text.startswith("gitdir: "):
        return []
    private = Path(text.removeprefix("gitdir: "))
    commondir = private / "commondir"
    if not commondir.is_file():
        return []
    common = (private / commondir.read_text().strip()).resolve()
    try:
        inside = Path(GIT_INSIDE) / private.resolve().relative_to(common)
    except ValueError:
        return []
    pointer = results / ".git-pointer"
    pointer.write_text(f"gitdir: {inside}\n")
    return [
        "--ro-bind",
        str(common),
        GIT_INSIDE,
        "--ro-bind",
        str(pointer),
        f"{WORKSPACE_INSIDE}/.git",
    ]


@cache
def bwrap_works(binary: str = "bwrap") -> bool:
    """Probe once per process: installed is not enough (user namespaces may be off)."""
    probe = [*sealed_root(), "--tmpfs", "/tmp"]
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
