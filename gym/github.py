"""Delivery to where reviewers are: open a draft pull request through GitHub's REST API.

A redelivered step finds the pull request it opened before instead of opening a second one, and
the token is scrubbed from every message. Pushing the branch (gym/push.py) and the pull
request's text (gym/pull_request_text.py) have modules of their own; delivery calls all three
through this one, so the functions it uses of theirs are re-exported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gym.errors import GymError
from gym.pull_request_text import pull_request_title as pull_request_title
from gym.pull_request_text import render_pull_request_body as render_pull_request_body
from gym.push import push_branch as push_branch
from gym.push import scrub

API_VERSION = "2022-11-28"
BODY_LIMIT = 65_536  # GitHub refuses longer pull request bodies
TRUNCATED_NOTE = "\n\n*(truncated to GitHub's size limit: the full report is in the run's files)*"

_SLUG_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)(.*)$")


class GitHubRejected(GymError):
    """GitHub refused the request (bad token, no access, invalid pull request): do not retry."""


class GitHubUnavailable(RuntimeError):
    """GitHub could not be reached or failed (5xx, rate limit): a retry may succeed."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    created: bool


def github_repo_slug(remote_url: str) -> str | None:
    """The "owner/name" that a URL, an scp-like address or a local path ends with.

    Local paths count too, so a bare repository at /x/acme/shop.git stands for acme/shop in tests
    and on hosts that look like GitHub Enterprise.
    """
    text = remote_url.strip()
    if "://" in text:
        path = urlsplit(text).path
    elif match := _SCP_LIKE.match(text):
        path = match.group(1)
    else:
        path = text
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    owner, name = parts[-2], parts[-1].removesuffix(".git")
    for part in (owner, name):
        if not _SLUG_PART.match(part) or part in {".", ".."}:
            return None
    return f"{owner}/{name}"


async def open_draft_pull_request(
    http: httpx.AsyncClient,
    *,
    api_url: str,
    token: str,
    repo: str,
    head: str,
    base: str,
    title: str,
    body: str,
) -> PullRequest:
    """The open pull request from `head`, opening a draft one only if there is none yet."""
    owner, _, name = repo.partition("/")
    if not (_SLUG_PART.match(owner) and _SLUG_PART.match(name)):
        raise GitHubRejected(f"not an owner/name repository: {repo!r}")
    pulls = f"{api_url.rstrip('/')}/repos/{owner}/{name}/pulls"
    api = _Api(http, token)
    found = await api.find_open(pulls, owner, head)
    if found:
        return found
    if len(body) > BODY_LIMIT:
        body = body[: BODY_LIMIT - len(TRUNCATED_NOTE)] + TRUNCATED_NOTE
    payload = {"title": title, "head": head, "base": base, "body": body,
               "draft": True, "maintainer_can_modify": False}  # fmt: skip
    response = await api.send("POST", pulls, json=payload)
    if response.status_code in (200, 201):
        return _pull(response, created=True)
    if response.status_code == 422 and "already exists" in _message(response):
        # Opened between our look-up and the POST (a concurrent redelivery): use that one.
        found = await api.find_open(pulls, owner, head)
        if found:
            return found
    raise api.failure(response)


class _Api:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        try:
            return await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as err:
            problem = f"cannot reach GitHub ({method} {url}): {type(err).__name__}: {err}"
        raise GitHubUnavailable(scrub(problem, [self.token]))

    async def find_open(self, pulls: str, owner: str, head: str) -> PullRequest | None:
        query = {"head": f"{owner}:{head}", "state": "open"}
        response = await self.send("GET", pulls, params=query)
        if response.status_code != 200:
            raise self.failure(response)
        try:
            items = response.json()
            # Checked here too: a server that ignores the filter must not hand us another PR.
            match = next((i for i in items if i["head"]["ref"] == head), None)
        except (ValueError, KeyError, TypeError):
            raise GitHubUnavailable("GitHub's list of pull requests could not be read") from None
        return _pull(response, created=False, item=match) if match else None

    def failure(self, response: httpx.Response) -> GymError | RuntimeError:
        status = response.status_code
        request = response.request
        text = f"GitHub {status} on {request.method} {request.url.path}: {_message(response)}"
        text = scrub(text, [self.token])
        limited = status == 429 or (status == 403 and _rate_limited(response))
        return GitHubUnavailable(text) if status >= 500 or limited else GitHubRejected(text)


def _rate_limited(response: httpx.Response) -> bool:
    # GitHub answers 403 to an exhausted rate limit: that passes with time, unlike a bad token.
    return response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
        errors = [e.get("message") or e.get("code") for e in data.get("errors") or []]
        return "; ".join(str(m) for m in [data.get("message"), *errors] if m)[:1000]
    except (ValueError, AttributeError):
        return response.text[:500]


def _pull(response: httpx.Response, *, created: bool, item: Any = None) -> PullRequest:
    try:
        data = item if item is not None else response.json()
        return PullRequest(number=int(data["number"]), url=str(data["html_url"]), created=created)
    except (ValueError, KeyError, TypeError):
        raise GitHubUnavailable("GitHub's pull request could not be read") from None
