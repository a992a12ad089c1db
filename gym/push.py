"""Pushing the delivered branch: `refs/heads/ratchet/<name>` on the remote, created, never moved.

Two rules hold whatever the caller passes: pushes go only to `ratchet/*` branches, and never move
a branch that holds something else (no force-push, ever). The token reaches git through the
environment only (never argv, which `ps` shows to every user) and is scrubbed from every message.
This is git, not GitHub's API (gym/github.py): it works against any remote, a local bare
repository included.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from gym.errors import GymError
from gym.git import GitError, git, is_sha

_BRANCH = re.compile(r"^ratchet/[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
# ext:: runs arbitrary commands and other helpers may reach anywhere: only the plain transports.
_PROTOCOLS = "file:git:ssh:http:https"


class PushRefused(GymError):
    """The push would break a delivery rule (branch name, moving a branch, exposing a token)."""


class PushFailed(RuntimeError):
    """git could not push (network, authentication, the remote said no); retrying may help."""


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
    shown = scrub(remote_url, secrets)

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


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret in it replaced by ***."""
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
    raise PushFailed(scrub(f"{doing}: {detail}", secrets))
