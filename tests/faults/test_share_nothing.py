"""Workers that share no disk: homes of their own, artifacts and snapshots in an S3-compatible
server on loopback, one API. A run with three repair rounds loses its worker to kill -9 in the
middle of a step, and a worker that joined afterwards, with an empty home, finishes it from the
same snapshots; a fork from a middle step then starts on a third worker that never saw the run.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from gym.git import git
from ratchet.settings import Settings
from tests.faults.harness import kill, start_worker, stop, wait_for_step
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.s3server import S3Server, s3_server
from tests.utils.scripts import ADD_MUL_WRONG, write_script
from tests.utils.settings import make_settings
from tests.workflows.helpers import wait_for_end

pytestmark = pytest.mark.minutes

MINUS = """
calc.py
<<<<<<< SEARCH
def mul(a, b):
    return a + b
=======
def mul(a, b):
    return a - b
>>>>>>> REPLACE
"""
FIX_MINUS = """
calc.py
<<<<<<< SEARCH
def mul(a, b):
    return a - b
=======
def mul(a, b):
    return a * b
>>>>>>> REPLACE
"""


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, temporal_target: str, server: S3Server,
             monkeypatch: pytest.MonkeyPatch) -> Settings:  # fmt: skip
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    url = f"s3://{server.bucket('shared-nothing')}/ratchet"
    return make_settings(tmp_path / "api-home", temporal_target, artifacts_url=url,
                         heartbeat_timeout_s=2.0, max_repair_rounds=3)  # fmt: skip


def _worker(settings: Settings, server: S3Server, home: Path) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    env = server.env() | {
        "RATCHET_HOME": str(home),
        "RATCHET_ARTIFACTS_URL": settings.artifacts_location,
    }
    return start_worker(settings, home.with_suffix(".log"), env)


async def _worker_of(client: Client, run_id: str, activity: str) -> int:
    """The pid of the worker running the run's `activity` now (its identity is pid@host)."""
    for _ in range(300):
        described = await client.get_workflow_handle(run_id).describe()
        for pending in described.raw_description.pending_activities:
            if pending.activity_type.name == activity and pending.last_worker_identity:
                return int(pending.last_worker_identity.split("@")[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker took {activity}")


def _published(server: S3Server, sha: str) -> bool:
    found = server.client().list_objects_v2(
        Bucket="shared-nothing", Prefix=f"ratchet/claims/snapshot.{sha}"
    )
    return bool(found.get("KeyCount"))


async def test_a_run_outlives_its_worker_and_forks_on_a_worker_that_never_saw_it(
    api: httpx.AsyncClient, client: Client, settings: Settings, server: S3Server, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, MINUS, FIX_MINUS])
    homes = [tmp_path / f"worker-{n}" for n in (1, 2, 3)]
    first = _worker(settings, server, homes[0])
    second = third = None
    try:
        response = await api.post("/tasks", json={
            "repo": str(repo), "goal": "add mul(a, b)", "policy": "scripted",
            "policy_script": str(script), "test_command": "sleep 2 && python -m pytest -q",
        })  # fmt: skip
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        await wait_for_step(client, run_id, "test", 2, timeout_s=120)
        assert await _worker_of(client, run_id, "ratchet.run_tests") == first.pid
        second = _worker(settings, server, homes[1])  # joins with an empty home
        await asyncio.sleep(1.0)  # inside the 2-second test command
        kill(first)
        run = await wait_for_end(api, run_id, timeout_s=180)
        assert run["status"] == "completed", run.get("error")
        steps = [(s["name"], s.get("round"), s["attempts"]) for s in run["steps"]]
        assert [r for n, r, _ in steps if n == "patch"] == [1, 2, 3]
        assert ("test", 2, 2) in steps, str(steps)  # the killed step, tried again on the newcomer
        snapshots = run["snapshots"]
        branch = run["result"]["branch"]
        assert "return a * b" in git("show", f"{branch}:calc.py", cwd=repo)
        assert git("rev-list", "--count", f"{snapshots['base']}..{branch}", cwd=repo) == "1"
        # The newcomer turned the first worker's snapshots back into the same commits.
        (mirror,) = (homes[1] / "mirrors").glob("*.git")
        for step in ("patch-1", "patch-2", "patch-3"):
            assert _published(server, snapshots[step]), step
            assert git("cat-file", "-t", snapshots[step], git_dir=mirror) == "commit"
        made_here = git("for-each-ref", "--format=%(objectname)", f"refs/ratchet/{run_id}/",
                        git_dir=mirror).split()  # fmt: skip
        assert snapshots["patch-2"] not in made_here  # fetched, as a bundle, not made
        stop(second)

        third = _worker(settings, server, homes[2])
        fork = await api.post(f"/runs/{run_id}/fork", json={
            "from_step": "patch-2", "policy": "scripted",
            "policy_script": str(write_script(tmp_path / "fork.toml", [FIX_MINUS])),
        })  # fmt: skip
        assert fork.status_code == 202, fork.text
        forked = await wait_for_end(api, fork.json()["run_id"], timeout_s=180)
        assert forked["status"] == "completed", forked.get("error")
        fork_branch = forked["result"]["branch"]
        assert "return a * b" in git("show", f"{fork_branch}:calc.py", cwd=repo)
        assert (homes[2] / "workspaces" / forked["run_id"]).is_dir()  # the third ran it
    finally:
        stop(first, second, third)
    # Nothing on disk was shared: no artifacts, memory or ledger in any home (they are in the
    # bucket), and the API's home holds no repository state.
    for home in (*homes, settings.home):
        assert not [p for p in ("artifacts", "memory", "ledger") if (home / p).exists()], home
    assert not (settings.home / "mirrors").exists() and not (settings.home / "envs").exists()
