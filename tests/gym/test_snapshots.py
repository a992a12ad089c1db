"""Snapshots travel between workers that share no disk: a bundle in the store, the same sha."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.runs import RunRef
from gym.errors import BadRepository
from gym.git import git
from gym.snapshots import Snapshots
from ratchet.artifacts import FilesystemArtifactStore
from tests.utils.repos import PY_REPO, make_repo

WHEN = "2026-12-02T00:00:00+00:00"


def test_a_snapshot_made_on_one_home_is_the_same_commit_on_another(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    store = FilesystemArtifactStore(tmp_path / "store")
    first, second = Snapshots(tmp_path / "w1", store), Snapshots(tmp_path / "w2", store)
    mirror, base = first.mirrors.sync(str(repo), "HEAD")
    run = RunRef("task-000000000001", str(repo), str(mirror), base, WHEN)
    ws = first.materialize(run, base, "patch")
    (ws / "calc.py").write_text("def add(a, b):\n    return b + a\n")
    one = first.snapshot(run, ws, "edit-1", "one")
    (ws / "notes.md").write_text("two\n")
    two = first.snapshot(run, ws, "edit-2", "two")  # a chain: bundled against the base

    there = second.materialize(run, two, "tests")  # a home with no mirror at all
    assert git("rev-parse", "HEAD", cwd=there) == two
    assert (there / "calc.py").read_text() == (ws / "calc.py").read_text()
    assert (there / "notes.md").read_text() == "two\n"
    assert second.changed_files(run, one)[0].path == "calc.py"
    assert git("rev-parse", f"{two}^", git_dir=second.mirror(run)) == one
    assert not (tmp_path / "w1" / "artifacts").exists()  # both wrote to the store only
    assert store.markers(f"snapshot.{two}") == [f"snapshot.{two}"]


def test_a_snapshot_no_worker_published_fails_with_what_is_missing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    store = FilesystemArtifactStore(tmp_path / "store")
    snapshots = Snapshots(tmp_path / "w", store)
    mirror, base = snapshots.mirrors.sync(str(repo), "HEAD")
    run = RunRef("task-000000000002", str(repo), str(mirror), base, WHEN)
    with pytest.raises(BadRepository, match=f"snapshot '{'e' * 40}' is neither in "):
        snapshots.materialize(run, "e" * 40, "tests")
    with pytest.raises(BadRepository, match="not a snapshot id"):
        snapshots.mirror(run, "../../etc")
