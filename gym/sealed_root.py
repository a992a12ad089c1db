"""The read-only part of the bubblewrap sandbox's root: what of this machine a command sees.

The system directories (/usr and its links, /etc with every file that is not world-readable
masked), /dev, /proc, and the interpreter's installation and the Rust toolchain when they live
outside /usr (pyenv or rustup under /root, /opt), each shown at a neutral path so nothing else of
its parent shows. It is the same for
every command, so it is computed once per process; gym/sandbox.py adds what each command gets
(the workspace, the environment, a private /tmp).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path

PYTHON_INSIDE = "/opt/ratchet/python"  # the interpreter's installation, when outside /usr
RUST_INSIDE = "/opt/ratchet/rust"  # the Rust toolchain's sysroot, when outside /usr
RUSTUP_BIN = Path.home() / ".cargo" / "bin"
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def base_python() -> str:
    """The real interpreter behind Ratchet's venv: environments are venvs made from it, and the
    scripts Ratchet runs inside (the span collector, the egress bridge) run on it."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


@cache
def sealed_root() -> tuple[str, ...]:
    """bwrap arguments for the read-only part of the root (computed once per process)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_DIRS:
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/etc", "/etc"]
    for path, is_dir in _unreadable_under("/etc"):
        args += (
            ["--tmpfs", path, "--remount-ro", path] if is_dir else ["--ro-bind", "/dev/null", path]
        )
    args += ["--dev", "/dev", "--proc", "/proc"]
    # The interpreter's installation, when it lives outside /usr (pyenv under /root, /opt): only
    # that directory, at a neutral path (so nothing of /root shows), its site-packages emptied
    # (a venv does not use it).
    if relocated():
        prefix = os.path.realpath(sys.base_prefix)
        args += ["--ro-bind", prefix, PYTHON_INSIDE]
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        site = f"{PYTHON_INSIDE}/lib/{version}/site-packages"
        if (Path(prefix) / "lib" / version / "site-packages").is_dir():
            args += ["--tmpfs", site, "--remount-ro", site]
    if (rust := rust_sysroot()) is not None:
        args += ["--ro-bind", rust, RUST_INSIDE]
    return tuple(args)


@cache
def rust_sysroot() -> str | None:
    """The worker's Rust toolchain when it lives outside /usr (rustup's, under ~/.rustup): its
    sysroot holds cargo, rustc and the standard library, and rustc finds its library relative to
    itself, so the toolchain works at another path. Debian's cargo is under /usr already."""
    rustc = shutil.which("rustc") or shutil.which("rustc", path=str(RUSTUP_BIN))
    if rustc is None:
        return None
    try:
        out = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                             timeout=30, check=False).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    real = os.path.realpath(out) if out else ""
    if not real or real.startswith("/usr/") or not os.path.isfile(f"{real}/bin/cargo"):
        return None
    return real


def relocated() -> bool:
    return not os.path.realpath(sys.base_prefix).startswith("/usr/")


def python_inside() -> str:
    """The base interpreter as the sealed sandbox shows it."""
    real = base_python()
    if not relocated():
        return real
    return PYTHON_INSIDE + real.removeprefix(os.path.realpath(sys.base_prefix))


def _unreadable_under(root: str) -> list[tuple[str, bool]]:
    """Files and directories under `root` that only their owner can read (shadow, host keys,
    private TLS keys): the sandbox's root user must not read them either."""
    found: list[tuple[str, bool]] = []
    for parent, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode) or info.st_mode & stat.S_IROTH:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            found.append((path, is_dir))
            if is_dir:
                dirs.remove(name)
    return found
