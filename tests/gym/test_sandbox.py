"""Each wall of the bubblewrap sandbox and each limit, shown holding against real commands."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from gym.runner import Limits, run_command
from gym.sandbox import BwrapSandbox, SandboxUnavailable, bwrap_works, choose_sandbox
from tests.utils.envs import default_environment

SANDBOX = BwrapSandbox().with_environment(default_environment())


def test_bubblewrap_works_here() -> None:
    # `make install` installs bubblewrap; every test below depends on it really confining.
    assert bwrap_works(), "bubblewrap is missing or cannot create namespaces on this machine"
    assert choose_sandbox().name == "bwrap"


def test_an_operator_can_refuse_to_run_without_a_sandbox() -> None:
    with pytest.raises(SandboxUnavailable, match="RATCHET_REQUIRE_SANDBOX"):
        choose_sandbox(require=True, allow=False)
    assert choose_sandbox(allow=False).name == "none"


async def run(command: str, ws: Path, **limits: object) -> tuple[int, str, list[str], float]:
    started = time.monotonic()
    result = await run_command(
        command,
        ws,
        limits=Limits(**{"timeout_s": 20, **limits}),
        sandbox=SANDBOX,  # type: ignore[arg-type]
    )
    assert result.isolation.startswith("bwrap (sealed): no network")
    return result.exit_code, result.output.decode(), result.killed_by, time.monotonic() - started


async def test_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    server.setblocking(False)
    code = (
        "import socket\n"
        f"for addr in [('1.1.1.1', 80), ('127.0.0.1', {port})]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=3)\n"
        "        print('CONNECTED', addr)\n"
        "    except OSError as err:\n"
        "        print('refused', addr, err)\n"
    )
    (tmp_path / "net.py").write_text(code)
    exit_code, out, _, _ = await run("python net.py", tmp_path)
    with pytest.raises(BlockingIOError):
        server.accept()  # nobody ever reached the host's listener
    server.close()
    assert exit_code == 0, out
    assert "CONNECTED" not in out
    assert [line.split()[0] for line in out.splitlines()] == ["refused", "refused"]


async def test_root_is_read_only_tmp_is_private_workspace_is_writable(tmp_path: Path) -> None:
    marker = f"ratchet-sandbox-{time.time_ns()}"
    exit_code, out, _, _ = await run(
        f"touch /etc/{marker} || echo ro-etc; touch /root/{marker} || echo ro-home; "
        f"touch /tmp/{marker} && echo tmp-ok; echo data > in-workspace && echo ws-ok",
        tmp_path,
    )
    assert exit_code == 0, out
    assert "ro-etc" in out and "ro-home" in out and "tmp-ok" in out and "ws-ok" in out
    assert not Path(f"/etc/{marker}").exists() and not Path(f"/tmp/{marker}").exists()
    assert (tmp_path / "in-workspace").read_text() == "data\n"


async def test_secrets_in_the_workers_environment_do_not_reach_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-very-secret")
    exit_code, out, _, _ = await run(
        "env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'", tmp_path
    )
    assert exit_code == 0
    assert "very-secret" not in out
    assert "PATH=" in out


async def test_a_hanging_command_is_killed_at_the_wall_clock_limit(tmp_path: Path) -> None:
    exit_code, _, killed_by, elapsed = await run("sleep 300", tmp_path, timeout_s=1)
    assert exit_code == 124 and killed_by == ["timeout"]
    assert elapsed < 10


async def test_a_fork_bomb_hits_the_process_limit(tmp_path: Path) -> None:
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    (tmp_path / "bomb.py").write_text(bomb)
    exit_code, _, killed_by, elapsed = await run(
        "python bomb.py", tmp_path, timeout_s=5, max_processes=64
    )
    assert "processes" in killed_by, killed_by
    assert elapsed < 20
    assert exit_code != 0


async def test_a_memory_eater_is_stopped(tmp_path: Path) -> None:
    exit_code, out, killed_by, _ = await run(
        "python -c 'x = bytearray(3 * 1024**3); print(len(x))'",
        tmp_path,
        memory_bytes=512 * 2**20,
    )
    assert exit_code != 0
    assert "MemoryError" in out or "memory" in killed_by, (out, killed_by)
    assert "3221225472" not in out


def test_a_worker_that_requires_a_sandbox_refuses_to_start_without_one(tmp_path: Path) -> None:
    from ratchet.settings import Settings
    from worker import runner_config

    settings = Settings(home=tmp_path, require_sandbox=True, sandbox="none")
    with pytest.raises(SandboxUnavailable, match="refusing to run untrusted code"):
        runner_config(settings)
    assert runner_config(Settings(home=tmp_path, require_sandbox=True)).sandbox.name == "bwrap"


async def test_the_sandbox_shows_nothing_of_the_host_but_what_programs_need(
    tmp_path: Path,
) -> None:
    import sys

    from gym import workspace

    # A worker's home beside the workspace: a token, another repository's mirror, a workspace of
    # another run; and this checkout, its venv, /root.
    home = tmp_path / "home"
    (home / "mirrors" / "other-secret-project.git").mkdir(parents=True)
    (home / "api-token").write_text("the-api-token")
    repo = tmp_path / "repo"
    from tests.utils.repos import make_repo

    make_repo(repo, {"a.py": "x = 1\n"})
    mirror, sha = workspace.Mirrors(home).sync(str(repo), "HEAD")
    ws = workspace.materialize(mirror, sha, home / "workspaces" / "run-1" / "tests")
    checkout = Path(__file__).resolve().parents[2]
    look = " ".join(
        f"ls -d {p} >/dev/null 2>&1 && echo VISIBLE {p};"
        for p in [home, home / "api-token", home / "mirrors", checkout, sys.prefix, "/root",
                  "/home", tmp_path]
    )  # fmt: skip
    exit_code, out, _, _ = await run(
        f"{look} cat /etc/shadow >/dev/null 2>&1 && echo VISIBLE /etc/shadow; "
        "git log --format=%s -1; python -c 'import sys; print(sys.prefix, sys.base_prefix)'; "
        "ls /opt/ratchet",
        ws,
    )
    assert exit_code == 0, out
    assert "VISIBLE" not in out, out
    assert "initial" in out  # git works in the workspace: its mirror is shown read-only
    assert "/opt/ratchet/env /opt/ratchet/python" in out or "/opt/ratchet/env /usr" in out, out
    assert "the-api-token" not in out
