"""Apply what a policy proposes: unified diffs, search/replace edit blocks and file operations.

Every change is computed in memory and every path checked before the first byte is written, so
a patch applies whole or not at all. Unified diffs are read by gym/unified_diff.py; the edit
blocks and file operations here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gym import unified_diff
from gym.errors import PatchDoesNotApply, PatchRefused
from gym.paths import DEFAULT_PROTECTED, safe_path

MAX_FILE_BYTES = 1_000_000
_SEARCH, _DIVIDER, _REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
_OP = re.compile(r"^\*\*\* (DELETE|RENAME) (.+?)(?: -> (.+))?$")


@dataclass(frozen=True)
class PatchRules:
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class Change:
    """The new content of one file (None deletes it)."""

    path: str
    content: str | None


def apply_patch(workspace: Path, text: str, rules: PatchRules | None = None) -> list[str]:
    """Apply `text` to the workspace and return the paths it changed."""
    rules = rules or PatchRules()
    if "GIT binary patch" in text:
        raise PatchRefused("binary patches are not accepted; write text files only")
    reader = FileReader(workspace, rules)
    if unified_diff.is_unified_diff(text):
        changes = unified_diff.unified_changes(text, reader)
    else:
        changes = _block_changes(text, reader)
    for change in changes:
        if change.content is not None and len(change.content.encode()) > rules.max_file_bytes:
            raise PatchRefused(
                f"refused {change.path}: {len(change.content.encode())} bytes is over the "
                f"{rules.max_file_bytes}-byte limit for one file"
            )
    for change in changes:
        target = safe_path(workspace, change.path, rules.protected)
        if change.content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.content)
    return sorted({c.path for c in changes})


class FileReader:
    """Current content of files as the patch sees them, including its own earlier changes."""

    def __init__(self, workspace: Path, rules: PatchRules) -> None:
        self.workspace = workspace
        self.rules = rules
        self.pending: dict[str, str | None] = {}

    def read(self, path: str) -> str | None:
        if path in self.pending:
            return self.pending[path]
        target = safe_path(self.workspace, path, self.rules.protected)
        if target.is_dir():
            raise PatchRefused(f"refused {path}: it is a directory")
        try:
            return target.read_text()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise PatchRefused(f"refused {path}: not a text file") from None

    def write(self, path: str, content: str | None) -> None:
        safe_path(self.workspace, path, self.rules.protected)
        self.pending[path] = content

    def changes(self) -> list[Change]:
        return [Change(path, content) for path, content in self.pending.items()]


# --- search/replace blocks and file operations ----------------------------------------------


def _block_changes(text: str, reader: FileReader) -> list[Change]:
    lines = text.splitlines(keepends=True)
    i, block, last_path = 0, 0, None
    while i < len(lines):
        stripped = lines[i].strip()
        op = _OP.match(stripped)
        if op:
            _file_operation(op.group(1), op.group(2).strip(), op.group(3), reader)
        elif stripped == _SEARCH:
            block += 1
            if last_path is None:
                raise PatchDoesNotApply(f"edit block {block}: no file path on the line before it")
            search, replace, i = _read_block(lines, i + 1, block, last_path)
            _replace(last_path, search, replace, block, reader)
        elif stripped and not stripped.startswith("```"):
            last_path = stripped.strip("`*").strip()
        i += 1
    changes = reader.changes()
    if not changes:
        raise PatchDoesNotApply(
            "no edits found: expected a unified diff or blocks of "
            f"'PATH' / '{_SEARCH}' / '{_DIVIDER}' / '{_REPLACE}'"
        )
    return changes


def _read_block(lines: list[str], i: int, block: int, path: str) -> tuple[str, str, int]:
    parts: list[list[str]] = [[]]
    while i < len(lines):
        stripped = lines[i].rstrip("\r\n")
        if stripped.strip() == _DIVIDER and len(parts) == 1:
            parts.append([])
        elif stripped.strip() == _REPLACE and len(parts) == 2:
            return "".join(parts[0]), "".join(parts[1]), i
        else:
            parts[-1].append(lines[i])
        i += 1
    raise PatchDoesNotApply(f"{path}: edit block {block} is not closed with '{_REPLACE}'")


def _replace(path: str, search: str, replace: str, block: int, reader: FileReader) -> None:
    current = reader.read(path)
    if not search.strip():
        if current:
            raise PatchDoesNotApply(
                f"{path}: edit block {block} has an empty SEARCH but the file exists; "
                "quote the text to replace"
            )
        reader.write(path, replace)
        return
    if current is None:
        raise PatchDoesNotApply(f"{path}: edit block {block} edits a file that does not exist")
    count = current.count(search)
    if count == 1:
        reader.write(path, current.replace(search, replace, 1))
        return
    if count > 1:
        raise PatchDoesNotApply(
            f"{path}: edit block {block}: SEARCH text occurs {count} times; add context lines"
        )
    # Tolerate trailing-whitespace drift, the most common difference in model output.
    file_lines = current.splitlines(keepends=True)
    at = unified_diff.find_lines([ln.rstrip("\r\n") for ln in file_lines], search.splitlines(), 0)
    if at is None:
        first = search.strip().splitlines()[0]
        raise PatchDoesNotApply(
            f"{path}: edit block {block}: SEARCH text not found (first line {first!r})"
        )
    n = len(search.splitlines())
    new = "".join(file_lines[:at]) + replace + "".join(file_lines[at + n :])
    reader.write(path, new)


def _file_operation(kind: str, path: str, dest: str | None, reader: FileReader) -> None:
    if reader.read(path) is None:
        raise PatchDoesNotApply(f"{path}: cannot {kind.lower()} a file that does not exist")
    if kind == "RENAME":
        if not dest:
            raise PatchDoesNotApply(f"{path}: RENAME needs '-> NEW_PATH'")
        if reader.read(dest.strip()) is not None:
            raise PatchDoesNotApply(f"{dest.strip()}: RENAME target already exists")
        reader.write(dest.strip(), reader.read(path))
    reader.write(path, None)
