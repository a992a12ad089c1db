"""What a model sees of a repository: its files, bounded, quoted as data."""

from __future__ import annotations

import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

MAX_CONTEXT_CHARS = 150_000
MAX_FILE_CHARS = 40_000


def tracked_files(workspace: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=workspace, capture_output=True, check=True
    ).stdout
    return [p for p in out.decode(errors="replace").split("\0") if p]


def repository_context(workspace: Path, budget: int = MAX_CONTEXT_CHARS) -> str:
    """Files of the workspace as <file> elements, smallest first, until the budget is spent."""
    parts: list[str] = []
    skipped: list[str] = []
    used = 0
    sized = []
    for path in tracked_files(workspace):
        full = workspace / path
        if full.is_file() and not full.is_symlink():
            sized.append((full.stat().st_size, path))
    for size, path in sorted(sized):
        if size > MAX_FILE_CHARS or used + size > budget:
            skipped.append(path)
            continue
        try:
            text = (workspace / path).read_text()
        except UnicodeDecodeError:
            continue
        used += len(text)
        parts.append(f'<file path="{escape(path)}">\n{escape(text)}\n</file>')
    if skipped:
        parts.append("<omitted>" + escape(", ".join(sorted(skipped))) + "</omitted>")
    return "\n".join(sorted(parts))
