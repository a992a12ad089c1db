"""Delivery to where reviewers are: push the run's `ratchet/*` branch to the repository's
remote and open (or find) its draft pull request. Every part is idempotent, so a redelivered
step pushes nothing twice and never opens a second pull request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from contracts.steps import DeliverInput
from gym import github
from gym.git import git
from gym.workspace import is_remote
from ratchet.artifacts import ArtifactStore


@dataclass(frozen=True)
class GitHubConfig:
    token: str
    api_url: str
    run_url: Callable[[str], str]
    """The Temporal UI page of a run, for the pull request's body."""
    trace_url: Callable[[str], str | None] = lambda _trace_id: None


def remote_of(target: str, mirror: Path) -> tuple[str, str] | None:
    """(remote URL, base branch) of the repository a run delivers to, if it has a remote."""
    if is_remote(target):
        base = git("symbolic-ref", "--short", "-q", "HEAD", git_dir=mirror, check=False)
        return target, base or "main"
    url = git("remote", "get-url", "origin", cwd=Path(target), check=False)
    if not url:
        return None
    base = git("symbolic-ref", "--short", "-q", "HEAD", cwd=Path(target), check=False)
    return url, base or "main"


async def open_pull_request(
    config: GitHubConfig,
    store: ArtifactStore,
    arg: DeliverInput,
    branch: str,
    commit: str,
    mirror: Path,
) -> str | None:
    """The draft pull request's URL, or None when the repository has no remote on GitHub.
    `mirror` is this worker's, holding the delivered commit."""
    found = await asyncio.to_thread(remote_of, arg.run.repo, mirror)
    if found is None:
        return None
    url, base = found
    slug = github.github_repo_slug(url)
    if slug is None:
        return None
    await asyncio.to_thread(github.push_branch, mirror, url, branch, commit, config.token)
    body = github.render_pull_request_body(
        run_id=arg.run.run_id, goal=arg.goal,
        plan=store.get_text(arg.plan_ref) if arg.plan_ref else "",
        gates=[(g.name, g.passed, g.detail) for g in arg.gates],
        cost_usd=arg.usage.cost_usd, tokens=arg.usage.tokens,
        temporal_url=config.run_url(arg.run.run_id), trace_id=arg.trace_id,
        trace_url=config.trace_url(arg.trace_id) if arg.trace_id else None,
        policy=arg.policy_label,
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as http:
        pull = await github.open_draft_pull_request(
            http, api_url=config.api_url, token=config.token, repo=slug, head=branch, base=base,
            title=github.pull_request_title(arg.goal), body=body,
        )  # fmt: skip
    return pull.url
