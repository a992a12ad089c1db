"""Warm pytest runs (gym/forkserver.py): a child of a sealed warm interpreter gives what a fresh
`python -m pytest` in a sandbox of its own gives, and anything it cannot give runs the usual way."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gym.forked import FORKED
from gym.forkserver import ForkServers, pytest_args
from gym.runner import Limits
from gym.testing import run_tests
from tests.utils.envs import sealed

TEST = "tests/test_it.py"


def workspace(root: Path, body: str) -> Path:
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / TEST).write_text(body)
    return root


@pytest.fixture
async def forks() -> AsyncIterator[ForkServers]:
    made = ForkServers()
    yield made
    await made.close()


async def run(ws: Path, forks: ForkServers | None, command: str = f"python -m pytest -q {TEST}",
              **limits: float) -> tuple[int, dict[str, str], str]:  # fmt: skip
    done = await run_tests(command, ws, sandbox=sealed(), reruns=0, forks=forks,
                           limits=Limits(**{"timeout_s": 60, **limits}))  # type: ignore[arg-type]  # fmt: skip
    outcomes = {t.id: t.outcome for t in done.tests}
    return done.result.exit_code, outcomes, done.result.output.decode() + done.result.isolation


TWO = "def test_good():\n    assert 1 + 1 == 2\n\n\ndef test_bad():\n    assert 1 + 1 == 3\n"


async def test_a_forked_run_gives_what_a_fresh_one_gives(
    tmp_path: Path, forks: ForkServers
) -> None:
    ws = workspace(tmp_path / "ws", TWO)
    fresh = await run(ws, None)
    warm = [await run(ws, forks), await run(ws, forks, f"pytest -q {TEST}")]
    for exit_code, outcomes, said in warm:
        assert FORKED in said and FORKED not in fresh[2]
        assert (exit_code, outcomes) == fresh[:2] == (1, {
            "tests/test_it.py::test_good": "passed", "tests/test_it.py::test_bad": "failed",
        })  # fmt: skip
        assert "1 failed, 1 passed" in said
    assert (forks.started, forks.forked) == (1, 2)  # one server, kept


async def test_a_child_sees_the_workspace_as_it_is_now(tmp_path: Path, forks: ForkServers) -> None:
    ws = workspace(tmp_path / "ws", "def test_it():\n    assert False\n")
    assert (await run(ws, forks))[0] == 1
    workspace(ws, "def test_it():\n    assert True\n")  # as a probe slot reset to another commit
    (ws / "helper.py").write_text("VALUE = 3\n")
    (ws / TEST).write_text("from helper import VALUE\n\ndef test_it():\n    assert VALUE == 3\n")
    assert (await run(ws, forks))[:2] == (0, {"tests/test_it.py::test_it": "passed"})
    assert forks.forked == 2


async def test_every_run_gets_its_own_tmp_home_and_environment(
    tmp_path: Path, forks: ForkServers
) -> None:
    body = (
        "import os, pathlib\n\n"
        "def test_fresh():\n"
        "    assert not pathlib.Path('/tmp/left-behind').exists()\n"
        "    assert not (pathlib.Path.home() / 'dot').exists()\n"
        "    assert os.environ['RATCHET_RESULTS'] == '/tmp/.ratchet'\n"
        "    assert 'RATCHET_API_TOKEN' not in os.environ\n"
        f"    assert not pathlib.Path({str(tmp_path)!r}).exists()  # the host is not there\n"
        "    pathlib.Path('/tmp/left-behind').write_text('x')\n"
        "    (pathlib.Path.home() / 'dot').write_text('x')\n"
    )
    ws = workspace(tmp_path / "ws", body)
    for _ in range(2):
        exit_code, outcomes, said = await run(ws, forks)
        assert (exit_code, outcomes) == (0, {"tests/test_it.py::test_fresh": "passed"}), said
    assert forks.forked == 2


async def test_a_run_cannot_reach_into_its_server(tmp_path: Path, forks: ForkServers) -> None:
    # What one commit's tests plant in the server would be in every later probe of the slot.
    body = "import os, pytest\n\ndef test_it():\n    with pytest.raises(PermissionError):\n"
    body += "        open(f'/proc/{os.getppid()}/mem', 'rb').read(1)\n"
    body += "    assert open('/proc/self/status').read()  # the run itself is as usual\n"
    ws = workspace(tmp_path / "ws", body)
    exit_code, _, said = await run(ws, forks)
    assert exit_code == 0 and FORKED in said, said


async def test_a_timeout_kills_the_child_and_the_server_serves_on(
    tmp_path: Path, forks: ForkServers
) -> None:
    ws = workspace(tmp_path / "ws", "import time\n\ndef test_slow():\n    time.sleep(60)\n")
    started = time.monotonic()
    exit_code, _, said = await run(ws, forks, timeout_s=2)
    assert exit_code == 124 and "killed after the 2s wall-clock limit" in said
    assert time.monotonic() - started < 15
    workspace(ws, "def test_quick():\n    pass\n")
    assert (await run(ws, forks))[0] == 0
    assert (forks.started, forks.forked) == (1, 2)


async def test_a_cancelled_run_stops_its_child(tmp_path: Path, forks: ForkServers) -> None:
    beat = tmp_path / "ws" / "beat"
    body = "import time, pathlib\n\ndef test_beats():\n    while True:\n"
    body += "        pathlib.Path('beat').write_text(str(time.time()))\n        time.sleep(0.05)\n"
    ws = workspace(tmp_path / "ws", body)
    task = asyncio.create_task(run(ws, forks))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if beat.exists():
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    last = beat.read_text()
    await asyncio.sleep(0.5)
    assert beat.read_text() == last  # nothing beats any more
    workspace(ws, "def test_quick():\n    pass\n")
    assert (await run(ws, forks))[0] == 0


async def test_what_would_import_differently_runs_the_usual_way(
    tmp_path: Path, forks: ForkServers
) -> None:
    # A fresh interpreter would import the workspace's pluggy.py (the working directory comes
    # first on sys.path); the server imported the environment's.
    ws = workspace(tmp_path / "ws", "import pluggy\n\ndef test_it():\n    assert pluggy.MINE\n")
    (ws / "pluggy.py").write_text("MINE = True\n")
    exit_code, _, said = await run(ws, forks)
    assert FORKED not in said and forks.forked == 0
    assert any("pluggy.py would shadow" in why for why in forks.cold)
    assert exit_code != 0  # pytest itself cannot start over that pluggy, as in a fresh process


def test_only_plain_pytest_commands_are_forked() -> None:
    assert pytest_args("python -m pytest -q 'tests/a.py::t[1-2]'") == ["-q", "tests/a.py::t[1-2]"]
    assert pytest_args("pytest -x tests") == ["--console-script", "-x", "tests"]
    for shell in ("python -m pytest; rm -rf x", "cd sub && python -m pytest", "FOO=1 pytest",
                  "python -m pytest $ARGS", 'python -m pytest -k "a or b"', "python -m unittest",
                  "python -m pytest tests/a.py::t[1]", "npm test"):  # fmt: skip
        assert pytest_args(shell) is None, shell
