"""Inside the sandbox: an interpreter of the repository's environment that imports pytest once,
then forks a child for every `python -m pytest ...` it is asked to run (stdlib only: it runs with
the environment's python, copied into the server's results directory; gym/forkserver.py starts
it and talks to it). `pytest ...` (the console script) is served the same way.

A fresh `python -m pytest` spends about 110 of its 190 ms importing pytest, and 30 more on its
built-in plugins. A child forked from here starts with those imported and does the rest as a
fresh process would: its own working directory, environment, argv, sys.path[0], rlimits, output
and exit status. What it would import
differently is refused (the caller then runs the command the usual way): a module already
imported here that was loaded from the workspace (an editable install of pytest or a plugin of
it), or one the workspace's import roots would shadow.

Protocol, one connection per run: the caller sends a JSON request with two file descriptors
(the write end of its output pipe, the read end of a "go" pipe). The child sends its
credentials, so the caller learns its pid as the host sees it and can put it in the run's
cgroup, then waits for the go byte. When the child exits, the server answers {"exit": code}; if
the caller hangs up first (timeout, cancel), the child's process group is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import runpy
import select
import shutil
import signal
import socket
import struct
import sys

TMP = "/tmp"  # noqa: S108 - the sandbox's private tmpfs
PR_SET_DUMPABLE = 4
KEPT_IN_TMP = ("workspace", ".ratchet")  # mounts: the workspace and the results directory


def main(socket_path: str, home: str, idle_s: float) -> int:
    try:
        import pytest  # noqa: F401
        from _pytest.config import default_plugins
    except Exception as err:  # an environment without pytest: the caller runs it cold
        print(f"cold: {type(err).__name__}: {err}", flush=True)
        return 3
    for name in default_plugins:  # every run imports pytest's own plugins: a third of a run
        with contextlib.suppress(Exception):
            importlib.import_module(f"_pytest.{name}")
    # Not dumpable: a run's code (its child) cannot ptrace it or read its memory, so nothing of
    # one run can be planted in the server for the next; each child is made dumpable again.
    _dumpable(0)
    preloaded = {name.partition(".")[0] for name in sys.modules}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(4)
    server.settimeout(idle_s)  # unused that long: it goes (its caller may be long gone)
    print("ready", flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            return 0
        conn.settimeout(None)
        with conn:
            _serve(server, conn, preloaded, home)


def _serve(server: socket.socket, conn: socket.socket, preloaded: set[str], home: str) -> None:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return
    out, go = fds
    request = json.loads(data)
    why = _refusal(request["cwd"], preloaded)
    if why:
        os.close(out)
        os.close(go)
        conn.sendall(json.dumps({"cold": why}).encode())
        return
    _fresh_tmp(home)
    pid = os.fork()
    if pid == 0:
        server.close()
        _child(conn, out, go, request)  # does not return
    os.close(out)
    os.close(go)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd, conn.fileno()], [], [])
    if pidfd not in ready:  # the caller hung up: the run goes with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())


def _refusal(cwd: str, preloaded: set[str]) -> str:
    """Why a child of this process would not import what a fresh interpreter would ("" if not)."""
    inside = cwd.rstrip("/") + "/"
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None) or ""
        if where.startswith(inside):
            return f"{name} was imported from the workspace"
    # sys.path[0] of `python -m` is the working directory; .pth files may add workspace dirs.
    roots = [cwd, *(p for p in sys.path[1:] if p.startswith(inside))]
    for root in roots:
        with contextlib.suppress(OSError):
            for entry in os.listdir(root):
                if entry.removesuffix(".py") in preloaded:
                    return f"{root}/{entry} would shadow the imported {entry.removesuffix('.py')}"
    return ""


def _fresh_tmp(home: str) -> None:
    """Each run gets the empty /tmp and HOME a sandbox of its own would have."""
    for entry in os.listdir(TMP):
        if entry in KEPT_IN_TMP:
            continue
        path = os.path.join(TMP, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    os.makedirs(home, exist_ok=True)


def _dumpable(value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


def _child(conn: socket.socket, out: int, go: int, request: dict[str, object]) -> None:
    os.setsid()
    _dumpable(1)
    creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    conn.sendmsg([b"p"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
    os.read(go, 1)
    os.close(go)
    conn.close()
    for which, value in request["rlimits"]:  # type: ignore[attr-defined]
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(stdin)
    cwd = str(request["cwd"])
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[call-overload]
    # pytest's entry points raise SystemExit with its status: the interpreter exits with it,
    # its atexit handlers run, as in a fresh process.
    if request["script"]:  # `pytest ...`: the console script on PATH, its directory first
        script = shutil.which("pytest") or "pytest"
        sys.path[0] = os.path.dirname(script)
        sys.argv = [script, *request["args"]]  # type: ignore[misc]
        runpy.run_path(script, run_name="__main__")
    else:
        sys.path[0] = cwd  # as `python -m` has it
        sys.argv = ["-m", *request["args"]]  # type: ignore[misc]
        runpy.run_module("pytest", run_name="__main__", alter_sys=True)
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
