"""Mirrors of target repositories, snapshots as commits on private refs, and workspaces.

A run's state after any step is a commit in the mirror, recorded on `refs/ratchet/<run_id>/<step>`;
its sha (the snapshot id) is all a workflow carries. Any process with the mirror can materialize
any snapshot into a worktree.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gym.errors import BadRepository, DeliveryConflict
from gym.git import GitError, git, git_bytes

_URL = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")
_REF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")


def is_remote(repo: str) -> bool:
    return bool(_URL.match(repo))


def _check_ref_part(value: str) -> str:
    if not _REF_PART.match(value) or ".." in value or value.endswith(".lock"):
        raise BadRepository(f"not usable in a ref name: {value!r}")
    return value


def resolve_local(repo: str, ref: str) -> str:
    """The commit `ref` names in the local repository `repo`; BadRepository if there is none."""
    path = Path(repo)
    if not path.is_absolute():
        raise BadRepository(f"repo must be an absolute path or a git URL, got {repo!r}")
    if not path.is_dir():
        raise BadRepository(f"no such directory: {repo}")
    try:
        git("rev-parse", "--git-dir", cwd=path)
    except GitError:
        raise BadRepository(f"not a git repository: {repo}") from None
    if ref.startswith("-"):
        raise BadRepository(f"not a ref: {ref!r}")
    try:
        return git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", cwd=path
        )
    except GitError:
        raise BadRepository(f"unknown ref {ref!r} in {repo}") from None


@dataclass(frozen=True)
class ChangedFile:
    status: str  # A, M, D, T (git's letters; renames are shown as delete + add)
    path: str
    added: int
    deleted: int
    binary: bool


class Mirrors:
    """Bare mirrors of target repositories under `<home>/mirrors`, one per repository."""

    def __init__(self, home: Path) -> None:
        self.root = home / "mirrors"

    def path_for(self, repo: str) -> Path:
        key = hashlib.sha256(repo.encode()).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", repo.rstrip("/").split("/")[-1])[:40] or "repo"
        return self.root / f"{name}-{key}.git"

    @contextmanager
    def locked(self, mirror: Path) -> Iterator[None]:
        # Two runs on one repository fetch into the same mirror: one at a time.
        self.root.mkdir(parents=True, exist_ok=True)
        with _mirror_lock(mirror):
            yield

    def sync(self, repo: str, ref: str) -> tuple[Path, str]:
        """Bring the mirror up to date and return it with the commit `ref` names."""
        mirror = self.path_for(repo)
        local_sha = None if is_remote(repo) else resolve_local(repo, ref)
        with self.locked(mirror):
            if not (mirror / "HEAD").exists():
                shutil.rmtree(mirror, ignore_errors=True)
                git("init", "--bare", "--quiet", str(mirror))
            try:
                git(
                    "fetch", "--quiet", "--force", "--no-write-fetch-head", repo,
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                    git_dir=mirror,
                )  # fmt: skip
                if local_sha is not None and not self.has_commit(mirror, local_sha):
                    git(
                        "fetch", "--quiet", "--no-write-fetch-head", repo, local_sha, git_dir=mirror
                    )
            except GitError as err:
                raise BadRepository(f"cannot fetch {repo}: {err.stderr.strip()[:500]}") from None
        if local_sha is not None:
            return mirror, local_sha
        try:
            sha = git(
                "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}", git_dir=mirror
            )
        except GitError:
            raise BadRepository(f"unknown ref {ref!r} in {repo}") from None
        return mirror, sha

    @staticmethod
    def has_commit(mirror: Path, sha: str) -> bool:
        return git("cat-file", "-t", sha, git_dir=mirror, check=False) == "commit"


def materialize(mirror: Path, sha: str, path: Path) -> Path:
    """Make `path` a clean worktree of the mirror at `sha`, reusing it when it already exists."""
    if (path / ".git").exists():
        try:
            git("checkout", "--quiet", "--force", "--detach", sha, cwd=path)
            git("clean", "-ffdxq", cwd=path)
            return path
        except GitError:
            shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Parallel steps (planners, bisection probes) add worktrees to one mirror: `prune` in one
    # must not remove another's half-made entry, so adding is done one at a time.
    with _mirror_lock(mirror):
        git("worktree", "prune", git_dir=mirror)
        try:
            git("worktree", "add", "--quiet", "--detach", "--force", str(path), sha,
                git_dir=mirror)  # fmt: skip
        except GitError:
            if (mirror / "HEAD").exists() and not _is_commit_in(mirror, sha):
                # No retry brings it: fail the step at once, saying what is missing.
                raise BadRepository(
                    f"snapshot {sha[:80]!r} is not a commit in the mirror {mirror} (made "
                    f"elsewhere, or the mirror was re-created since)"
                ) from None
            raise
    return path


def _is_commit_in(mirror: Path, sha: str) -> bool:
    found = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}",
                git_dir=mirror, check=False)  # fmt: skip
    return bool(found)


@contextmanager
def _mirror_lock(mirror: Path) -> Iterator[None]:
    with open(mirror.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def discard(mirror: Path, path: Path) -> None:
    """Remove a workspace made by `materialize`."""
    git("worktree", "remove", "--force", str(path), git_dir=mirror, check=False)
    shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", git_dir=mirror, check=False)


def snapshot(workspace: Path, run_id: str, step: str, message: str, when: str) -> str:
    """Record the workspace as a commit on refs/ratchet/<run_id>/<step> and return its sha.

    `when` fixes the commit date, so a retried step that makes the same change gets the same sha.
    """
    ref = f"refs/ratchet/{_check_ref_part(run_id)}/{_check_ref_part(step)}"
    git("add", "--all", cwd=workspace)
    tree = git("write-tree", cwd=workspace)
    head = git("rev-parse", "HEAD", cwd=workspace)
    if tree == git("rev-parse", "HEAD^{tree}", cwd=workspace):
        sha = head
    else:
        dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        sha = git("commit-tree", tree, "-p", head, "-m", message, cwd=workspace, env=dates)
        git("reset", "--quiet", "--soft", sha, cwd=workspace)
    git("update-ref", ref, sha, cwd=workspace)
    return sha


def restore_paths(workspace: Path, sha: str, paths: list[str]) -> None:
    """Put `paths` back as they are at `sha` (used to grade with the original tests)."""
    if paths:
        git("checkout", sha, "--", *paths, cwd=workspace)


def diff(mirror: Path, base: str, sha: str) -> bytes:
    return git_bytes("diff", "--binary", "--no-color", "--no-ext-diff", base, sha, git_dir=mirror)


def changed_files(mirror: Path, base: str, sha: str) -> list[ChangedFile]:
    opts = ("--no-renames", "-z", "--no-ext-diff", base, sha)
    statuses = git("diff", "--name-status", *opts, git_dir=mirror).split("\0")
    status_of = dict(zip(statuses[1::2], statuses[0::2], strict=False))
    files = []
    for entry in git("diff", "--numstat", *opts, git_dir=mirror).split("\0"):
        if not entry:
            continue
        added, deleted, path = entry.split("\t", 2)
        binary = added == "-"
        files.append(
            ChangedFile(
                status=status_of.get(path, "M")[:1],
                path=path,
                added=0 if binary else int(added),
                deleted=0 if binary else int(deleted),
                binary=binary,
            )
        )
    return files


def deliver(
    mirror: Path, target: str, run_id: str, base: str, sha: str, message: str, when: str
) -> tuple[str, str]:
    """Squash base..sha into one commit on branch `ratchet/<run_id>` of the target.

    The target's checked-out branch and working tree are never touched: the commit is made in
    the mirror and fetched into the target's refs. Returns (commit, branch).
    """
    branch = f"ratchet/{_check_ref_part(run_id)}"
    dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    tree = git("rev-parse", f"{sha}^{{tree}}", git_dir=mirror)
    commit = git("commit-tree", tree, "-p", base, "-m", message, git_dir=mirror, env=dates)
    delivered_ref = f"refs/ratchet/{run_id}/deliver"
    git("update-ref", delivered_ref, commit, git_dir=mirror)
    if is_remote(target):
        git("update-ref", f"refs/heads/{branch}", commit, git_dir=mirror)
        return commit, branch
    existing = git(
        "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=Path(target), check=False
    )
    if existing == commit:
        return commit, branch  # a retried delivery: already done
    if existing:
        raise DeliveryConflict(f"branch {branch} already exists in {target} at {existing[:12]}")
    git(
        "fetch", "--quiet", "--no-write-fetch-head", str(mirror),
        f"{delivered_ref}:refs/heads/{branch}",
        cwd=Path(target),
    )  # fmt: skip
    return commit, branch
