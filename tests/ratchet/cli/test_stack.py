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


def test_up_demo_trace_and_clean_stop(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OTEL_", "RATCHET_", "TEMPORAL_"))
    }
    env |= {
        "RATCHET_HOME": str(tmp_path / "home"),
        "RATCHET_API_PORT": str(free_port()),
        "RATCHET_TEMPORAL_PORT": str(free_port()),
        "RATCHET_UI_PORT": str(free_port()),
    }
    up = subprocess.Popen(
        [RATCHET, "up"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        banner = []
        deadline = time.monotonic() + 90
        assert up.stdout is not None
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, "ratchet up exited early:\n" + "".join(banner)
            banner.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(banner)
        token = (tmp_path / "home" / "api-token").read_text().strip()
        assert f"API token    {token}" in text
        assert f"http://127.0.0.1:{env['RATCHET_API_PORT']}" in text
        assert f"http://127.0.0.1:{env['RATCHET_UI_PORT']}" in text
        assert (tmp_path / "home" / "temporal.db-wal").exists()  # SQLite in WAL mode

        demo = subprocess.run(
            [RATCHET, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        out = demo.stdout
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
        children = _children(up.pid)
        up.send_signal(signal.SIGINT)
        rest = up.communicate(timeout=60)[0]
    assert up.returncode == 0, rest
    assert "stopped." in rest
    assert len(children) == 3
    assert not [pid for pid in children if _alive(pid)]
