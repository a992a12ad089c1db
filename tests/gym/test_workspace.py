from __future__ import annotations

import re
from pathlib import Path

import pytest

from gym import workspace
from gym.errors import BadRepository, DeliveryConflict
from gym.git import git
from tests.utils.repos import PY_REPO, commit, make_repo

WHEN = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "calc", PY_REPO)


def test_sync_resolves_refs_and_refuses_unknown_ones(repo: Path, tmp_path: Path) -> None:
    mirrors = workspace.Mirrors(tmp_path / "home")
    first = git("rev-parse", "HEAD", cwd=repo)
    second = commit(repo, {"calc.py": "# changed\n"}, "second")
    mirror, sha = mirrors.sync(str(repo), "HEAD~1")
    assert sha == first
    assert mirrors.sync(str(repo), "main")[1] == second
    assert (mirror / "HEAD").exists() and not (mirror / "calc.py").exists()
    with pytest.raises(BadRepository, match="unknown ref"):
        mirrors.sync(str(repo), "nope")
    with pytest.raises(BadRepository, match="no such directory"):
        mirrors.sync(str(tmp_path / "missing"), "HEAD")


def test_snapshots_are_commits_on_private_refs_and_deterministic(
    repo: Path, tmp_path: Path
) -> None:
    mirrors = workspace.Mirrors(tmp_path / "home")
    mirror, base = mirrors.sync(str(repo), "HEAD")
    shas = []
    for attempt in range(2):  # a retried step makes the same change: same snapshot id
        ws = workspace.materialize(mirror, base, tmp_path / "ws" / str(attempt))
        (ws / "calc.py").write_text("changed\n")
        shas.append(workspace.snapshot(ws, "run-1", "patch-1", "msg", WHEN))
    assert shas[0] == shas[1] != base
    assert git("rev-parse", "refs/ratchet/run-1/patch-1", git_dir=mirror) == shas[0]
    other = workspace.materialize(mirror, shas[0], tmp_path / "elsewhere")
    assert (other / "calc.py").read_text() == "changed\n"


def test_materialize_reuses_and_cleans_a_workspace(repo: Path, tmp_path: Path) -> None:
    mirror, base = workspace.Mirrors(tmp_path / "home").sync(str(repo), "HEAD")
    ws = workspace.materialize(mirror, base, tmp_path / "ws")
    (ws / "calc.py").write_text("dirty\n")
    (ws / "junk.txt").write_text("junk\n")
    again = workspace.materialize(mirror, base, tmp_path / "ws")
    assert again == ws
    assert (ws / "calc.py").read_text() == PY_REPO["calc.py"]
    assert not (ws / "junk.txt").exists()


def test_deliver_makes_one_branch_without_touching_the_checkout(repo: Path, tmp_path: Path) -> None:
    mirror, base = workspace.Mirrors(tmp_path / "home").sync(str(repo), "HEAD")
    ws = workspace.materialize(mirror, base, tmp_path / "ws")
    (ws / "calc.py").write_text("v1\n")
    s1 = workspace.snapshot(ws, "run-1", "patch-1", "one", WHEN)
    (ws / "calc.py").write_text("v2\n")
    s2 = workspace.snapshot(ws, "run-1", "patch-2", "two", WHEN)
    assert s1 != s2
    (repo / "calc.py").write_text("user's uncommitted work\n")
    commit_sha, branch = workspace.deliver(mirror, str(repo), "run-1", base, s2, "goal\n", WHEN)
    assert branch == "ratchet/run-1"
    assert git("rev-parse", f"{branch}^", cwd=repo) == base  # one squashed commit
    assert git("show", f"{branch}:calc.py", cwd=repo) == "v2"
    assert (repo / "calc.py").read_text() == "user's uncommitted work\n"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo) == "main"
    # A retried delivery is a no-op; a different change on the same branch is a conflict.
    assert workspace.deliver(mirror, str(repo), "run-1", base, s2, "goal\n", WHEN)[0] == commit_sha
    with pytest.raises(DeliveryConflict):
        workspace.deliver(mirror, str(repo), "run-1", base, s1, "goal\n", WHEN)


def test_changed_files(repo: Path, tmp_path: Path) -> None:
    mirror, base = workspace.Mirrors(tmp_path / "home").sync(str(repo), "HEAD")
    ws = workspace.materialize(mirror, base, tmp_path / "ws")
    (ws / "calc.py").write_text("a\nb\n")
    (ws / "tests" / "test_calc.py").unlink()
    (ws / "new.py").write_text("x\n")
    sha = workspace.snapshot(ws, "r", "s", "m", WHEN)
    files = {f.path: f for f in workspace.changed_files(mirror, base, sha)}
    assert files["new.py"].status == "A" and files["new.py"].added == 1
    assert files["tests/test_calc.py"].status == "D"
    assert files["calc.py"].status == "M"


def test_a_snapshot_that_is_not_in_the_mirror_is_a_bad_repository(
    repo: Path, tmp_path: Path
) -> None:
    mirror, base = workspace.Mirrors(tmp_path / "home").sync(str(repo), "HEAD")
    missing = "0123456789abcdef" * 2 + "01234567"  # a commit id no repository here has
    said = re.escape(f"snapshot '{missing}' is not a commit in the mirror {mirror} (")
    with pytest.raises(BadRepository, match=said):
        workspace.materialize(mirror, missing, tmp_path / "new")
    ws = workspace.materialize(mirror, base, tmp_path / "kept")
    with pytest.raises(BadRepository, match=said):  # a workspace reused from an earlier step
        workspace.materialize(mirror, missing, ws)
