"""Where a patch may write: inside the workspace, outside .git, off the protected globs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path, PurePosixPath

from gym.errors import PatchRefused

DEFAULT_PROTECTED = (".github/workflows/**",)


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches_any(path: str, patterns: Iterable[str]) -> str | None:
    """The first glob (`**` spans directories) that `path` matches, or None."""
    for pattern in patterns:
        if _glob_regex(pattern).match(path):
            return pattern
    return None


def safe_path(workspace: Path, raw: str, protected: Iterable[str] = DEFAULT_PROTECTED) -> Path:
    """Resolve a path from a patch, refusing every way out of the workspace."""
    if not raw or "\0" in raw or raw.strip() != raw:
        raise PatchRefused(f"refused path {raw!r}: empty or malformed")
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
        raise PatchRefused(f"refused path {raw!r}: absolute paths are not allowed")
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if ".." in parts:
        raise PatchRefused(f"refused path {raw!r}: '..' would leave the workspace")
    if any(part.lower() == ".git" for part in parts):
        raise PatchRefused(f"refused path {raw!r}: nothing under .git/ may be written")
    rel = "/".join(parts)
    pattern = matches_any(rel, protected)
    if pattern is not None:
        raise PatchRefused(f"refused path {raw!r}: protected by {pattern!r}")
    root = workspace.resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PatchRefused(f"refused path {raw!r}: a symlink leads outside the workspace")
    return root / rel


def write_safely(workspace: Path, raw: str, content: str, protected: Iterable[str] = ()) -> Path:
    """Write `content` at `raw` in the workspace (safe_path's checks), its directories made."""
    target = safe_path(workspace, raw, protected)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target
