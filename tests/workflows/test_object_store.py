"""A run whose artifacts live in S3-compatible storage (a real server on loopback): the worker
and the API share no artifact directory, only the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from ratchet.settings import Settings
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.s3server import S3Server, s3_server
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.utils.settings import make_settings
from tests.workflows.helpers import wait_for_end


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture
def settings(
    tmp_path: Path, temporal_target: str, server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for key, value in server.env().items():  # the standard AWS variables, as a deployment sets
        monkeypatch.setenv(key, value)
    bucket = server.bucket("runs")
    return make_settings(tmp_path / "home", temporal_target,
                         artifacts_url=f"s3://{bucket}/ratchet")  # fmt: skip


async def test_a_run_with_a_repair_round_keeps_every_artifact_in_the_bucket(
    api: httpx.AsyncClient, worker: Worker, settings: Settings, server: S3Server, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
    response = await api.post("/tasks", json={
        "repo": str(repo), "goal": "add mul(a, b)", "policy": "scripted",
        "policy_script": str(script),
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    run = await wait_for_end(api, run_id)
    assert run["status"] == "completed", run.get("error")
    assert [s["round"] for s in run["steps"] if s["name"] == "patch"] == [1, 2]
    # What the API serves comes from the bucket: the patch, the transcript.
    patch = await api.get(f"/runs/{run_id}/patch")
    assert patch.status_code == 200 and "a * b" in patch.text
    transcript = await api.get(f"/runs/{run_id}/transcript")
    assert transcript.status_code == 200 and transcript.json()["conversations"]
    objects = server.client().list_objects_v2(Bucket="runs", Prefix="ratchet/")
    assert objects["KeyCount"] >= 5, objects
    assert not settings.artifacts_dir.exists()  # nothing written to a local artifacts directory
