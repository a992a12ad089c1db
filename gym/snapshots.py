"""Snapshots that travel between workers, which share no disk.

Each worker keeps its own mirror of a repository (a cache under its home). A snapshot one
worker makes is published to the artifact store as a git bundle of `base..sha`, found through
the marker `snapshot.<sha>`; a worker that lacks the commit fetches the repository itself (for
the base and its history) and then the bundle, and gets the very same sha. A run's workflow
carries shas only, so any step (a retry after a worker died, a fork of a finished run) can run
on any worker.
"""

from __future__ import annotations

import fcntl
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contracts.runs import RunRef
from gym import workspace
from gym.errors import BadRepository
from gym.git import GitError, git
from ratchet.artifacts import ArtifactNotFound, ArtifactStore


def _marker(sha: str) -> str:
    if len(sha) not in (40, 64) or any(c not in "0123456789abcdef" for c in sha):
        raise BadRepository(f"not a snapshot id: {sha[:80]!r}")
    return f"snapshot.{sha}"


def publish(store: ArtifactStore, mirror: Path, base: str, sha: str) -> None:
    """Keep `sha` (a descendant of `base` in `mirror`) in the store as a bundle against base."""
    name = _marker(sha)
    if sha == base or store.marker(name) is not None:
        return
    ref = f"refs/snapshots/{sha}"  # a bundle carries refs; this one also keeps the commit from gc
    git("update-ref", ref, sha, git_dir=mirror)
    with tempfile.TemporaryDirectory(prefix="ratchet-bundle-") as tmp:
        bundle = Path(tmp) / "snapshot.bundle"
        git("bundle", "create", "--quiet", str(bundle), ref, f"^{base}", git_dir=mirror)
        store.claim(name, store.put_file(bundle).encode())


def fetch(store: ArtifactStore, mirror: Path, sha: str) -> bool:
    """Bring a published snapshot into `mirror` (which must hold its base); False if none is."""
    found = store.marker(_marker(sha))
    if found is None:
        return False
    ref = f"refs/snapshots/{sha}"
    with tempfile.TemporaryDirectory(prefix="ratchet-bundle-") as tmp:
        bundle = Path(tmp) / "snapshot.bundle"
        try:
            store.get_file(found.decode(), bundle)
        except ArtifactNotFound:
            raise BadRepository(f"snapshot {sha[:12]}'s bundle is missing from the store") from None
        try:
            git("fetch", "--quiet", "--no-write-fetch-head", str(bundle), f"{ref}:{ref}",
                git_dir=mirror)  # fmt: skip
        except GitError as err:
            raise BadRepository(
                f"snapshot {sha[:12]}'s bundle does not apply: {err.stderr.strip()[:300]}"
            ) from None
    return True


class Snapshots:
    """This worker's mirrors and run workspaces, filled from the repository and the store."""

    def __init__(self, home: Path, store: ArtifactStore) -> None:
        self.home = home
        self.store = store
        self.mirrors = workspace.Mirrors(home)

    def mirror(self, run: RunRef, *shas: str) -> Path:
        """This worker's mirror of the run's repository, holding the base and `shas`."""
        mirror = self.mirrors.path_for(run.repo)
        missing = [s for s in (run.base_sha, *shas) if not _has(mirror, s)]
        if not missing:
            return mirror
        if not _has(mirror, run.base_sha):
            # A worker new to the repository, or to this base: the repository itself has it.
            self.mirrors.sync(run.repo, run.base_sha)
        for sha in dict.fromkeys(missing):
            if _has(mirror, sha):
                continue
            with self.mirrors.locked(mirror):
                if not _has(mirror, sha) and not fetch(self.store, mirror, sha):
                    raise BadRepository(
                        f"snapshot {sha[:80]!r} is neither in {run.repo} nor in the artifact "
                        "store (made before snapshots were published, or by another store)"
                    )
        return mirror

    def materialize(self, run: RunRef, sha: str, purpose: str) -> Path:
        """The run's workspace for `purpose`, at `sha` (reused across steps and retries)."""
        path = self.home / "workspaces" / run.run_id / purpose
        return workspace.materialize(self.mirror(run, sha), sha, path)

    @contextmanager
    def pooled(self, run: RunRef, kind: str) -> Iterator[Path]:
        """A workspace of this worker's pool for the run's repository, held until the block
        ends (an flock, so runs side by side never share one). The pool outlives runs: a probe
        resets a warm worktree to its commit (`materialize_at`, which checks out only what
        differs) instead of adding a new one, which costs ~0.2 s and a full checkout."""
        pool = self.home / "pool" / self.mirrors.path_for(run.repo).name
        pool.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            with open(pool / f"{kind}-{n}.lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield pool / f"{kind}-{n}"
                return

    def materialize_at(self, run: RunRef, sha: str, path: Path) -> Path:
        """`path` (from `pooled`) as a clean worktree at `sha`."""
        return workspace.materialize(self.mirror(run, sha), sha, path)

    def discard(self, run: RunRef, path: Path) -> None:
        workspace.discard(self.mirror(run), path)

    def diff(self, run: RunRef, sha: str) -> bytes:
        return workspace.diff(self.mirror(run, sha), run.base_sha, sha)

    def changed_files(self, run: RunRef, sha: str) -> list[workspace.ChangedFile]:
        return workspace.changed_files(self.mirror(run, sha), run.base_sha, sha)

    def snapshot(self, run: RunRef, ws: Path, step: str, message: str) -> str:
        """Record the workspace as the step's snapshot and publish it for the other workers."""
        sha = workspace.snapshot(ws, run.run_id, step, message, run.when)
        publish(self.store, self.mirror(run), run.base_sha, sha)
        return sha


def _has(mirror: Path, sha: str) -> bool:
    return (mirror / "HEAD").exists() and workspace.Mirrors.has_commit(mirror, sha)
