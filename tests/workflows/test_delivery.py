"""Delivery to where reviewers are: the branch pushed to the repository's remote and a draft
pull request opened on a fake GitHub API on loopback, once, whatever is redelivered."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.delivery import GitHubConfig
from activities.forward import ForwardActivities
from activities.models import Models
from api.main import create_app
from contracts.runs import RunRef
from contracts.steps import DeliverInput
from gym.git import git
from ratchet.artifacts import FilesystemArtifactStore
from tests.conftest import TOKEN, make_settings, serve_app
from tests.utils.fake_github import FakeGitHub
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit
from worker import build_worker

GITHUB_TOKEN = "ghp_" + "t0k3n" * 8


async def test_a_verified_run_is_pushed_and_opens_one_draft_pull_request(
    tmp_path: Path, temporal_target: str, client: Client, tracer_provider: TracerProvider
) -> None:
    remote = tmp_path / "acme" / "shop.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo = make_repo(tmp_path / "shop", PY_REPO)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "--quiet", "origin", "main", cwd=repo)
    fake = FakeGitHub(GITHUB_TOKEN, {"acme/shop": remote})
    with fake.serve() as github_url:
        settings = make_settings(
            tmp_path / "home", temporal_target, github_token=SecretStr(GITHUB_TOKEN),
            github_api_url=github_url,
        )  # fmt: skip
        app = create_app(settings, client=client, tracer_provider=tracer_provider)
        async with (
            build_worker(client, settings),
            serve_app(app) as base,
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=30) as api,
        ):  # fmt: skip
            script = write_script(tmp_path / "s.toml", [ADD_MUL_WRONG, FIX_MUL])
            run_id = await submit(api, repo, script, goal="add mul @everyone")
            run = await wait_for_end(api, run_id)
        assert run["status"] == "completed", run
        branch = f"ratchet/{run_id}"
        commit = run["result"]["commit"]
        # Pushed: the remote's branch is the delivered commit.
        assert git("rev-parse", f"refs/heads/{branch}", git_dir=remote) == commit
        posts = fake.posts()
        assert len(posts) == 1
        sent = posts[0]["json"]
        assert sent["draft"] is True and sent["head"] == branch and sent["base"] == "main"
        assert sent["title"].startswith("ratchet: add mul")
        body = sent["body"]
        assert run_id in body and settings.workflow_ui_url(run_id) in body
        assert run["trace_id"] in body and "TEST DOUBLE" in body
        for gate in run["result"]["gates"]:
            assert gate["name"] in body
        assert run["result"]["pull_request_url"] == fake.pulls[0]["html_url"]

        # The deliver step, redelivered (a retry after the worker died at its end): same
        # branch, same commit, and the same pull request, found, not opened again.
        store = FilesystemArtifactStore(settings.artifacts_dir)
        activities = ForwardActivities(
            home=settings.home, store=store, models=Models(store, {}),
            github=GitHubConfig(GITHUB_TOKEN, github_url, settings.workflow_ui_url),
        )  # fmt: skip
        mirror = next(p for p in (settings.home / "mirrors").iterdir() if p.is_dir())
        snapshot = list(run["snapshots"].values())[-1]  # what was delivered
        again = await ActivityEnvironment().run(
            activities.deliver,
            DeliverInput(RunRef(run_id, str(repo), str(mirror), run["snapshots"]["base"],
                                _when(mirror, commit)), snapshot, "add mul @everyone"),
        )  # fmt: skip
        assert again.commit == commit and again.pull_request_url == fake.pulls[0]["html_url"]
        assert len(fake.posts()) == 1
        # The token went to GitHub as a header, never into the pull request.
        assert GITHUB_TOKEN not in body


def _when(mirror: Path, commit: str) -> str:
    return git("show", "-s", "--format=%aI", commit, git_dir=mirror)
