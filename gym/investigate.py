"""The gym's part of an investigation: frames to files, tests that exercise them, history,
the culprit's hunks and their revert. Paths from a payload are data: only those that resolve to
a file inside the workspace are used.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

from gym.errors import BadRepository, PatchDoesNotApply, PatchRefused
from gym.git import GitError, git
from gym.paths import safe_path

TEST_FILE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")


def resolve_frame_files(
    workspace: Path, candidates: list[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """(files in the workspace, refused paths) for (filename, abs_path) pairs of in-app frames."""
    found: list[str] = []
    refused: list[str] = []
    for filename, abs_path in candidates:
        hit, outside = None, False
        # An absolute filename (a traceback's) is tried as its repository-relative suffixes.
        for raw in (filename, *_suffixes(abs_path or filename)):
            if not raw:
                continue
            try:
                path = safe_path(workspace, raw, ())
            except PatchRefused:
                outside = outside or raw == filename
                continue
            if path.is_file():
                hit = path.relative_to(workspace.resolve()).as_posix()
                break
        if hit and hit not in found:
            found.append(hit)
        elif hit is None and outside:
            refused.append(filename[:200])
    return found, refused


def _suffixes(abs_path: str) -> list[str]:
    """ "/srv/app/app/billing/totals.py" → "app/app/billing/totals.py", "app/billing/totals.py"…"""
    parts = [p for p in PurePosixPath(abs_path).parts if p not in ("/", "")]
    if ".." in parts:
        return []
    return ["/".join(parts[i:]) for i in range(1, len(parts))]


def tests_for(workspace: Path, files: list[str], tracked: list[str]) -> list[str]:
    """Test files that import or name the modules of `files` (the likeliest reproductions)."""
    wanted = []
    for rel in files:
        module = rel.removesuffix(".py").replace("/", ".")
        stem = PurePosixPath(rel).stem
        wanted.append((module, stem))
    found = []
    for rel in tracked:
        if not TEST_FILE.search(rel):
            continue
        try:
            text = (workspace / rel).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for module, stem in wanted:
            parent, _, last = module.rpartition(".")
            if (
                module in text
                or (parent and f"from {parent} import {last}" in text)
                or (PurePosixPath(rel).stem in (f"test_{stem}", f"{stem}_test"))
            ):
                found.append(rel)
                break
    return found


def pytest_command(test_files: list[str]) -> str:
    return "python -m pytest -q " + " ".join(shlex.quote(t) for t in test_files)


def first_parent_history(mirror: Path, good: str | None, bad: str, limit: int) -> list[str]:
    """Commits oldest first ending with `bad`; from `good` (included) when given."""
    spec = [f"{good}..{bad}"] if good else [bad]
    try:
        newest_first = git("rev-list", "--first-parent", f"--max-count={limit}", *spec,
                           git_dir=mirror).split()  # fmt: skip
    except GitError as err:
        raise BadRepository(f"cannot read the history: {err.stderr.strip()[:300]}") from None
    commits = list(reversed(newest_first))
    return ([good] if good else []) + commits


def commit_info(mirror: Path, sha: str) -> tuple[str, str]:
    author = git("show", "-s", "--format=%an <%ae>", sha, git_dir=mirror)
    message = git("show", "-s", "--format=%B", sha, git_dir=mirror).strip()
    return author, message


def changed_by(mirror: Path, sha: str) -> list[str]:
    return git("show", "--format=", "--name-only", "--no-renames", sha, git_dir=mirror).split()


def hunks(mirror: Path, sha: str, files: list[str]) -> str:
    return git("show", "--format=", "--no-renames", sha, "--", *files, git_dir=mirror)


def revert_hunks(workspace: Path, mirror: Path, sha: str, files: list[str]) -> str:
    """Undo what `sha` did to `files` in the workspace; the whole commit when that fails."""
    diff = hunks(mirror, sha, files)
    try:
        git("apply", "--reverse", "--3way", cwd=workspace, input=diff.encode() + b"\n")
        return f"reverted the culprit's hunks in {', '.join(files)}"
    except GitError:
        git("reset", "--hard", "--quiet", cwd=workspace)
    try:
        git("revert", "--no-commit", "--no-edit", sha, cwd=workspace)
    except GitError as err:
        git("reset", "--hard", "--quiet", cwd=workspace)
        raise PatchDoesNotApply(
            f"the culprit {sha[:12]} no longer reverts cleanly: {err.stderr.strip()[:300]}"
        ) from None
    return f"reverted the whole culprit commit {sha[:12]}"


def release_refs(release: str) -> list[str]:
    """Refs a Sentry release may name: "app@2.14.3+9f3c2ab" → "9f3c2ab", "2.14.3", "v2.14.3"."""
    if not release:
        return []
    version = release.split("@", 1)[-1]
    version, _, build = version.partition("+")
    return [r for r in (build, version, f"v{version}") if r and not r.startswith("-")]
