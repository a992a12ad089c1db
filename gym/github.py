"""Delivery to where reviewers are: push the delivered branch and open a draft pull request.

Two rules hold whatever the caller passes: pushes go only to `ratchet/*` branches and never move
a branch that holds something else; a redelivered step finds the pull request it opened before
instead of opening a second one. The token reaches git through the environment only (never argv,
which `ps` shows to every user) and is scrubbed from every message.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from gym.errors import GymError
from gym.git import GitError, git, is_sha

API_VERSION = "2022-11-28"
BODY_LIMIT = 65_536  # GitHub refuses longer pull request bodies
TRUNCATED_NOTE = "\n\n*(truncated to GitHub's size limit: the full report is in the run's files)*"

_BRANCH = re.compile(r"^ratchet/[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_SLUG_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)(.*)$")
# ext:: runs arbitrary commands and other helpers may reach anywhere: only the plain transports.
_PROTOCOLS = "file:git:ssh:http:https"


class PushRefused(GymError):
    """The push would break a delivery rule (branch name, moving a branch, exposing a token)."""


class PushFailed(RuntimeError):
    """git could not push (network, authentication, the remote said no); retrying may help."""


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


def check_branch(branch: str) -> str:
    if not _BRANCH.match(branch) or ".." in branch or branch.endswith((".lock", ".")):
        raise PushRefused(f"pushes go only to ratchet/<name> branches, not {branch!r}")
    try:
        git("check-ref-format", f"refs/heads/{branch}")
    except GitError:
        raise PushRefused(f"not a valid branch name: {branch!r}") from None
    return branch


def push_branch(
    mirror_or_repo: Path, remote_url: str, branch: str, commit: str, token: str | None
) -> None:
    """Make `refs/heads/<branch>` on the remote point at `commit`, creating it, never moving it.

    Already there at `commit`: nothing to do (a redelivered step). There at anything else:
    PushRefused, since the branch is someone else's now (no force-push, ever).
    """
    check_branch(branch)
    if not is_sha(commit):
        raise PushRefused(f"push a full commit id, not {commit!r}")
    if git("cat-file", "-t", commit, cwd=mirror_or_repo, check=False) != "commit":
        raise PushRefused(f"no commit {commit} in {mirror_or_repo}")  # a retry cannot fix it
    if remote_url.startswith("-") or not remote_url.strip():
        raise PushRefused("not a remote: it starts with '-' or is empty")
    parts = urlsplit(remote_url)
    if token and parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise PushRefused("refusing to send a token over plain http to another host")
    secrets = _secrets(token, remote_url)
    env = _push_env(token if parts.scheme in ("http", "https") else None)
    ref = f"refs/heads/{branch}"
    shown = _scrub(remote_url, secrets)

    listed = _run_git(mirror_or_repo, env, secrets, f"cannot read {shown}",
                      "ls-remote", "--refs", remote_url, ref)  # fmt: skip
    existing = next((line.split("\t")[0] for line in listed.splitlines()
                     if line.endswith(f"\t{ref}")), None)  # fmt: skip
    if existing == commit:
        return
    if existing:
        raise PushRefused(f"{branch} already exists on {shown} at {existing[:12]}: not moving it")
    # An empty lease means "only if the branch does not exist": should it appear between the
    # listing above and this push, the push fails instead of moving someone else's branch.
    _run_git(
        mirror_or_repo, env, secrets, f"cannot push {branch} to {shown}",
        "push", "--quiet", "--no-verify", "--recurse-submodules=no",
        f"--force-with-lease={ref}:", remote_url, f"{commit}:{ref}",
    )  # fmt: skip


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _secrets(token: str | None, remote_url: str) -> list[str]:
    found = [token, _basic(token)] if token else []
    parts = urlsplit(remote_url)
    if parts.scheme in ("http", "https"):  # credentials written into the URL itself
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo, userinfo.partition(":")[2]]
    return [s for s in found if s]


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _push_env(token: str | None) -> dict[str, str]:
    # Config through GIT_CONFIG_* is read like `-c` but stays out of argv. The empty helper
    # drops any stored credentials; an empty GIT_ASKPASS stops git asking any program for them.
    config = [("credential.helper", "")]
    if token:
        config.append(("http.extraHeader", f"Authorization: Basic {_basic(token)}"))
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "GIT_ALLOW_PROTOCOL": _PROTOCOLS,
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"  # fail rather than ask for a passphrase
    return env


def _run_git(cwd: Path, env: dict[str, str], secrets: list[str], doing: str, *args: str) -> str:
    # The error is raised outside the `except`, so no unscrubbed GitError rides along as context.
    try:
        return git(*args, cwd=cwd, env=env, timeout=300)
    except GitError as err:
        detail = err.stderr.strip()[-1000:]
    except subprocess.TimeoutExpired:
        detail = "timed out"
    raise PushFailed(_scrub(f"{doing}: {detail}", secrets))


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
        raise GitHubUnavailable(_scrub(problem, [self.token]))

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
        text = _scrub(text, [self.token])
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


# ---- the pull request's text ---------------------------------------------------------------


def pull_request_title(goal: str) -> str:
    line = _defang(" ".join(goal.split())) or "change"
    title = f"ratchet: {line}"
    return title if len(title) <= 100 else title[:99] + "…"


def render_pull_request_body(
    *,
    run_id: str,
    goal: str,
    plan: str,
    gates: Sequence[tuple[str, bool, str]],
    cost_usd: float,
    tokens: int,
    temporal_url: str,
    trace_id: str,
    trace_url: str | None = None,
    policy: str,
) -> str:
    """The run's report as markdown. Goal, plan and gate output come from people and models
    outside Ratchet: they are shown in fenced blocks, as data, never as markdown of ours."""
    lines = []
    if "scripted" in policy.lower():
        lines += ["> [!WARNING]",
                  "> **TEST DOUBLE**: this change was made by the scripted policy, which replays",
                  "> a script. No model was involved.", ""]  # fmt: skip
    lines += [
        f"Ratchet run {_code(run_id)} by {_code(policy)}.",
        "",
        "### Goal",
        _fence(goal, 4000),
        "",
        "### Plan",
        _fence(plan, 30_000),
        "",
        "### Gates",
    ]
    for name, passed, detail in gates:
        lines.append(f"- {'✅ passed' if passed else '❌ failed'}: {_code(name)}")
        if detail.strip():
            lines += ["", _fence(detail, 2000), ""]
    if not gates:
        lines.append("- none ran")
    trace = f"{_link('trace', trace_url)} {_code(trace_id)}" if trace_url else _code(trace_id)
    lines += [
        "",
        "### Cost",
        f"${cost_usd:,.4f} for {tokens:,} tokens",
        "",
        "### Links",
        f"- {_link('Temporal run', temporal_url)}",
        f"- Trace: {trace}",
    ]
    return "\n".join(lines) + "\n"


def _fence(text: str, limit: int) -> str:
    # A fence ends only at a run of the same character at least as long: one longer than any
    # backtick run inside cannot be closed by the text (tildes never close a backtick fence).
    body = text[:limit] + ("\n… (truncated)" if len(text) > limit else "")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _code(text: str) -> str:
    # Short one-line text of ours or the operator's (a label, a gate name): a code span of
    # harmless characters, so it can neither mention, link nor open HTML.
    safe = re.sub(r"[^A-Za-z0-9 _.,:;/+=()-]", "?", " ".join(text.split()))[:120]
    return f"`{safe or '?'}`"


def _link(label: str, url: str) -> str:
    if urlsplit(url).scheme not in ("http", "https"):
        return f"{label}: {_code(url)}"
    return f"[{label}]({quote(url, safe=':/?#[]@!$&*+,;=%-._~')})"


def _defang(text: str) -> str:
    # A zero-width space after @ or # stops GitHub from notifying a team or linking an issue.
    return re.sub(r"([@#])(?=[A-Za-z0-9])", "\\1\u200b", text)
