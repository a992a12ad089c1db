"""`ratchet up` + `ratchet demo` as a new user runs them: real processes, real ports, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
RATCHET = str(Path(sys.executable).parent / "ratchet")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OTEL_", "RATCHET_", "TEMPORAL_"))
    }
    return env | {
        "RATCHET_HOME": str(tmp_path / "home"),
        "RATCHET_API_PORT": str(free_port()),
        "RATCHET_TEMPORAL_PORT": str(free_port()),
        "RATCHET_UI_PORT": str(free_port()),
        **extra,
    }


def _up(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """`ratchet up` started, and its banner once it printed it."""
    up = subprocess.Popen(
        [RATCHET, "up", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    banner = []
    deadline = time.monotonic() + 90
    assert up.stdout is not None
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        assert line, "ratchet up exited early:\n" + "".join(banner)
        banner.append(line)
        if line.startswith("Ctrl-C"):
            break
    return up, "".join(banner)


def _demo(env: dict[str, str]) -> str:
    demo = subprocess.run(
        [RATCHET, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Status: completed" in demo.stdout
    return demo.stdout


def _stop(up: subprocess.Popen[str]) -> tuple[list[int], str]:
    children = _children(up.pid)
    up.send_signal(signal.SIGINT)
    rest = up.communicate(timeout=60)[0]
    assert up.returncode == 0, rest
    assert "stopped." in rest
    assert not [pid for pid in children if _alive(pid)]
    return children, rest


def test_up_demo_trace_and_clean_stop(tmp_path: Path) -> None:
    env = _env(tmp_path)
    up, text = _up(env)
    try:
        token = (tmp_path / "home" / "api-token").read_text().strip()
        assert f"API token    {token}" in text
        assert f"http://127.0.0.1:{env['RATCHET_API_PORT']}" in text
        assert f"http://127.0.0.1:{env['RATCHET_UI_PORT']}" in text
        assert (tmp_path / "home" / "temporal.db-wal").exists()  # SQLite in WAL mode

        out = _demo(env)
        assert "SCRIPTED policy" in out and "TEST DOUBLE" in out
        assert "Status: completed" in out
        assert "[FAIL]" not in out
        for gate in ("tests", "tamper", "diff_budget", "protected_paths", "lint", "observability"):
            assert f"[PASS] {gate}:" in out
        assert "+def median(values: list[float]) -> float:" in out
        run_id = out.strip().splitlines()[-1].removeprefix("run_id: ")
        assert re.fullmatch(r"task-[0-9a-f]{12}", run_id), out
        trace_id = re.search(r"Trace id: ([0-9a-f]{32})", out).group(1)  # type: ignore[union-attr]
        branch_line = re.search(r"Branch: (\S+) in (\S+)", out)
        assert branch_line is not None
        branch, repo = branch_line.groups()
        subprocess.run(["git", "rev-parse", "--verify", branch], cwd=repo, check=True)

        for _ in range(50):  # spans are exported in batches every half second
            trace = subprocess.run(
                [RATCHET, "trace", run_id], cwd=ROOT, env=env, capture_output=True, text=True
            )
            if "RunActivity:ratchet.deliver" in trace.stdout:
                break
            time.sleep(0.2)
        assert trace.returncode == 0, trace.stderr
        assert trace.stdout.splitlines()[0] == f"trace_id: {trace_id}"
        for name in (
            "POST /tasks",
            "RunWorkflow:ForwardPlanningWorkflow",
            "RunActivity:ratchet.deliver",
        ):
            assert name in trace.stdout
        assert "(ratchet-api)" in trace.stdout and "(ratchet-worker)" in trace.stdout
    finally:
        children, _ = _stop(up)
    assert len(children) == 3


def test_up_with_workers_runs_each_in_a_home_of_its_own(tmp_path: Path) -> None:
    # RATCHET_WORKERS, as `make up` passes it on; the flag wins over it. (A run across such
    # workers: tests/faults/test_share_nothing.py.)
    env = _env(tmp_path, RATCHET_WORKERS="3")
    home = tmp_path / "home"
    up, text = _up(env, "--workers", "2")
    try:
        assert f"Workers      2, homes {home}/workers/1..2" in text, text
        assert f"Artifacts    {(home / 'artifacts').as_uri()}" in text
        logs = [home / "logs" / f"worker-{n}.log" for n in (1, 2)]
        for _ in range(100):  # each says so once it polls
            if all(log.exists() and "worker polling" in log.read_text() for log in logs):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the workers did not start polling")
    finally:
        children, _ = _stop(up)
    assert len(children) == 4  # Temporal, two workers, the API
    assert not (home / "logs" / "worker.log").exists()
