"""The deliver step (activities/forward.py with activities/delivery.py): the change as one commit
on `ratchet/<run_id>` in the user's repository, pushed to its remote with a draft pull request
on a fake GitHub API on loopback when the worker has a token, and what cannot be delivered
failing for good (or, for an outage, to be retried)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.delivery import remote_of
from contracts.agent import ToolCall, ToolInput
from contracts.runs import Gate, RunRef
from contracts.steps import DeliverInput
from gym.git import git
from gym.github import GitHubUnavailable
from tests.activities.conftest import World
from tests.utils.fake_github import FakeGitHub
from tests.utils.repos import PY_REPO, make_repo

GITHUB_TOKEN = "ghp_" + "d3l1v3r" * 6
MUL = (
    "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a + b\n=======\ndef add(a, b):\n"
    "    return a + b\n\n\ndef mul(a, b):\n    return a * b\n>>>>>>> REPLACE\n"
)
GATES = [Gate("tests", True, "2 passed"), Gate("lint", True, "0 findings (ruff)")]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository standing for github.com/acme/shop."""
    bare = tmp_path / "acme" / "shop.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    return bare


@pytest.fixture
def github(remote: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(GITHUB_TOKEN, {"acme/shop": remote})
    with fake.serve() as url:
        yield fake, url


async def patched(world: World, repo: Path) -> tuple[RunRef, str]:
    """The run and the snapshot the agent's apply_patch made."""
    run = await world.prepare(repo)
    call = ToolCall("toolu_1", "apply_patch", json.dumps({"patch": MUL}))
    out = await world.run(world.agent.tool, ToolInput(run, run.base_sha, call, "true", 60))
    assert not out.result.is_error, out.result.content
    return run, str(out.snapshot)


async def test_without_a_remote_the_change_is_a_branch_of_the_repository(
    make_world: Callable[..., World], github: tuple[FakeGitHub, str], tmp_path: Path
) -> None:
    fake, url = github
    world = make_world(github_token=SecretStr(GITHUB_TOKEN), github_api_url=url)
    repo = make_repo(tmp_path / "calc", PY_REPO)
    head = git("rev-parse", "HEAD", cwd=repo)
    run, snapshot = await patched(world, repo)
    assert remote_of(str(repo), Path(run.mirror)) is None
    delivery = await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul\n\nx"))
    assert delivery.branch == f"ratchet/{run.run_id}" and delivery.files_changed == 1
    assert delivery.pull_request_url is None and fake.requests == []
    assert git("rev-parse", f"{delivery.branch}^", cwd=repo) == head
    assert git("log", "-1", "--format=%B", delivery.branch, cwd=repo).startswith(
        f"add mul\n\nDelivered by Ratchet run {run.run_id}."
    )
    patch = world.store.get_text(delivery.patch_ref)
    assert patch == git("diff", "HEAD", delivery.branch, cwd=repo) + "\n"
    assert git("rev-parse", "HEAD", cwd=repo) == head  # the checkout is never touched

    again = await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul\n\nx"))
    assert again.commit == delivery.commit  # a redelivered step delivers nothing twice


async def test_a_github_remote_gets_the_branch_pushed_and_one_draft_pull_request(
    make_world: Callable[..., World], github: tuple[FakeGitHub, str], remote: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    fake, url = github
    world = make_world(github_token=SecretStr(GITHUB_TOKEN), github_api_url=url)
    repo = make_repo(tmp_path / "shop", PY_REPO)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "--quiet", "origin", "main", cwd=repo)
    run, snapshot = await patched(world, repo)
    assert remote_of(str(repo), Path(run.mirror)) == (str(remote), "main")
    arg = DeliverInput(
        run, snapshot, "add mul", gates=GATES, plan_ref=world.store.put_text("1. write mul"),
        trace_id="0af7651916cd43dd8448eb211c80319c", policy_label="scripted (TEST DOUBLE)",
    )  # fmt: skip
    delivery = await world.run(world.forward.deliver, arg)
    assert git("rev-parse", f"refs/heads/{delivery.branch}", git_dir=remote) == delivery.commit
    (post,) = fake.posts()
    sent = post["json"]
    assert (sent["draft"], sent["head"], sent["base"]) == (True, delivery.branch, "main")
    assert sent["title"] == "ratchet: add mul"
    for expected in (run.run_id, "1. write mul", "0 findings (ruff)", "TEST DOUBLE",
                     world.settings.workflow_ui_url(run.run_id)):  # fmt: skip
        assert expected in sent["body"]
    assert GITHUB_TOKEN not in sent["body"]
    assert delivery.pull_request_url == fake.pulls[0]["html_url"]

    again = await world.run(world.forward.deliver, arg)
    assert again.pull_request_url == delivery.pull_request_url and len(fake.posts()) == 1


async def test_a_taken_branch_fails_the_delivery_for_good(world: World, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    run, snapshot = await patched(world, repo)
    git("branch", f"ratchet/{run.run_id}", "HEAD", cwd=repo)  # someone else's, at the base
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul"))
    err = caught.value
    assert err.non_retryable and err.type == "DeliveryConflict"
    assert err.message.startswith(f"branch ratchet/{run.run_id} already exists in {repo} at ")


async def test_a_token_github_refuses_fails_for_good_and_is_never_shown(
    make_world: Callable[..., World], remote: Path, tmp_path: Path
) -> None:
    fake = FakeGitHub("ghp_the_right_one", {"acme/shop": remote})
    with fake.serve() as url:
        world = make_world(github_token=SecretStr(GITHUB_TOKEN), github_api_url=url)
        repo = make_repo(tmp_path / "shop", PY_REPO)
        git("remote", "add", "origin", str(remote), cwd=repo)
        run, snapshot = await patched(world, repo)
        with pytest.raises(ApplicationError) as caught:
            await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul"))
    err = caught.value
    assert err.non_retryable and err.type == "GitHubRejected"
    assert err.message == "GitHub 401 on GET /repos/acme/shop/pulls: Bad credentials"
    assert GITHUB_TOKEN not in str(err.__cause__)


async def test_a_github_outage_fails_the_attempt_to_be_retried(
    make_world: Callable[..., World], github: tuple[FakeGitHub, str], remote: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    fake, url = github
    world = make_world(github_token=SecretStr(GITHUB_TOKEN), github_api_url=url)
    repo = make_repo(tmp_path / "shop", PY_REPO)
    git("remote", "add", "origin", str(remote), cwd=repo)
    run, snapshot = await patched(world, repo)
    fake.fail_next(1, 502)
    # Not an ApplicationError: the worker reports it as retryable, and Temporal retries it.
    with pytest.raises(GitHubUnavailable, match="GitHub 502 on GET /repos/acme/shop/pulls"):
        await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul"))
    retried = await world.run(world.forward.deliver, DeliverInput(run, snapshot, "add mul"))
    assert retried.pull_request_url == fake.pulls[0]["html_url"] and len(fake.pulls) == 1
