"""Snapshots are recorded per step, and a new run can start from any of them."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio.worker import Worker

from gym.git import git
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import wait_for_end


async def test_fork_from_a_failed_runs_snapshot_with_another_script(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    first = await api.post("/tasks", json={
        "repo": str(repo), "goal": "add mul", "policy": "scripted", "max_repair_rounds": 0,
        "policy_script": str(write_script(tmp_path / "one.toml", [ADD_MUL_WRONG])),
    })  # fmt: skip
    assert first.status_code == 202, first.text
    source_id = first.json()["run_id"]
    source = await wait_for_end(api, source_id)
    assert source["status"] == "failed"
    assert set(source["snapshots"]) == {"base", "patch-1"}
    base, patched = source["snapshots"]["base"], source["snapshots"]["patch-1"]
    assert git("rev-parse", f"{patched}^", git_dir=_mirror(tmp_path)) == base

    unknown = await api.post(f"/runs/{source_id}/fork", json={"from_step": "patch-9"})
    assert unknown.status_code == 422
    assert "recorded: base, patch-1" in unknown.json()["detail"]

    fork = await api.post(f"/runs/{source_id}/fork", json={
        "from_step": "patch-1", "policy": "scripted",
        "policy_script": str(write_script(tmp_path / "two.toml", [FIX_MUL])),
    })  # fmt: skip
    assert fork.status_code == 202, fork.text
    assert fork.json()["forked_from"] == f"{source_id}@patch-1"
    run = await wait_for_end(api, fork.json()["run_id"])
    assert run["status"] == "completed", run
    assert run["forked_from"] == f"{source_id}@patch-1"
    branch = run["result"]["branch"]
    # The fork's single patch (FIX_MUL) applied on top of the first run's patch-1 snapshot.
    assert "return a * b" in git("show", f"{branch}:calc.py", cwd=repo)
    assert git("show", f"{branch}:tests/test_mul.py", cwd=repo)
    assert git("rev-parse", f"{branch}^", cwd=repo) == base


def _mirror(tmp_path: Path) -> Path:
    (mirror,) = (tmp_path / "home" / "mirrors").glob("*.git")
    return mirror


async def test_fork_of_an_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/runs/task-nope/fork", json={"from_step": "base"})
    assert response.status_code == 404
